package sealing

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	eventsv1 "linkway/proto/linkway/events/v1"
)

// refWalk is walk as it was before it had plans: every populated field
// of every message, by reflection. walk must find what it finds.
func refWalk(m protoreflect.Message, fn func(protoreflect.Message)) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		visit := func(child protoreflect.Message) {
			if sealable(child.Descriptor().FullName()) {
				fn(child)
			} else {
				refWalk(child, fn)
			}
		}
		switch {
		case fd.IsList():
			for i := range v.List().Len() {
				visit(v.List().Get(i).Message())
			}
		case fd.IsMap():
			if fd.MapValue().Kind() == protoreflect.MessageKind {
				v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool { visit(mv.Message()); return true })
			}
		default:
			visit(v.Message())
		}
		return true
	})
}

// fill sets every message field of m (the first member of each oneof),
// lists with two elements, down to depth levels.
func fill(m protoreflect.Message, depth int) {
	if depth == 0 {
		return
	}
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); messageOf(fd) != nil {
			if od := fd.ContainingOneof(); od != nil && m.WhichOneof(od) != nil {
				continue
			}
			set(m, fd, depth)
		}
	}
}

// set fills the one field fd of m.
func set(m protoreflect.Message, fd protoreflect.FieldDescriptor, depth int) {
	switch {
	case fd.IsList():
		l := m.Mutable(fd).List()
		for range 2 {
			e := l.NewElement()
			fill(e.Message(), depth-1)
			l.Append(e)
		}
	case fd.IsMap():
		var k protoreflect.MapKey
		switch fd.MapKey().Kind() {
		case protoreflect.StringKind:
			k = protoreflect.ValueOfString("k").MapKey()
		case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
			k = protoreflect.ValueOfInt32(1).MapKey()
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
			k = protoreflect.ValueOfInt64(1).MapKey()
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
			k = protoreflect.ValueOfUint32(1).MapKey()
		case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			k = protoreflect.ValueOfUint64(1).MapKey()
		case protoreflect.BoolKind:
			k = protoreflect.ValueOfBool(true).MapKey()
		}
		mp := m.Mutable(fd).Map()
		v := mp.NewValue()
		fill(v.Message(), depth-1)
		mp.Set(k, v)
	default:
		fill(m.Mutable(fd).Message(), depth-1)
	}
}

// TestWalkFindsWhatAFullWalkFinds: for every message type of the events'
// schema and each of its message fields alone (so every member of every
// oneof has its turn), walk visits the same personal parts as a walk of
// every field by reflection. A plan that skipped a field that can hold
// personal data would leave it unsealed on the log.
func TestWalkFindsWhatAFullWalkFinds(t *testing.T) {
	file := eventsv1.File_linkway_events_v1_journey_proto.Path()
	types := 0
	personal := 0
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		md := mt.Descriptor()
		if md.ParentFile().Package() != eventsv1.File_linkway_events_v1_journey_proto.Package() {
			return true
		}
		types++
		fields := md.Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if messageOf(fd) == nil {
				continue
			}
			m := mt.New()
			set(m, fd, 6)
			var want, got []protoreflect.Message
			refWalk(m, func(p protoreflect.Message) { want = append(want, p) })
			if err := walk(m, func(p protoreflect.Message) error { got = append(got, p); return nil }); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Errorf("%s.%s: walk found %d personal parts, a full walk %d", md.FullName(), fd.Name(), len(got), len(want))
				continue
			}
			seen := map[protoreflect.ProtoMessage]int{} // the same parts, in any order
			for j := range want {
				seen[want[j].Interface()]++
				seen[got[j].Interface()]--
			}
			for _, n := range seen {
				if n != 0 {
					t.Errorf("%s.%s: walk found other parts than a full walk", md.FullName(), fd.Name())
					break
				}
			}
			personal += len(want)
		}
		return true
	})
	if types < 20 || personal == 0 {
		t.Fatalf("looked at %d message types of %s and found %d personal parts: the test saw too little", types, file, personal)
	}
	t.Logf("%d message types, %d personal parts", types, personal)
}
