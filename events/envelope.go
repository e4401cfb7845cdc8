package events

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	eventsv1 "linkway/proto/linkway/events/v1"
)

var eventOneof = (&eventsv1.Envelope{}).ProtoReflect().Descriptor().Oneofs().ByName("event")

// Wrap returns an envelope holding e, which must be one of the journey
// event messages; the caller fills in the envelope's other fields.
func Wrap(e proto.Message) *eventsv1.Envelope {
	env := &eventsv1.Envelope{}
	name := e.ProtoReflect().Descriptor().FullName()
	fields := eventOneof.Fields()
	for i := range fields.Len() {
		if fd := fields.Get(i); fd.Message().FullName() == name {
			env.ProtoReflect().Set(fd, protoreflect.ValueOfMessage(e.ProtoReflect()))
			return env
		}
	}
	panic("events.Wrap: " + string(name) + " is not a journey event") // a programming error, caught by tests
}

// EventName is the full protobuf name of the event an envelope holds
// (linkway.events.v1.ReferralReceived), or "" when it holds none: the name
// stored in headers and used as a metric label.
func EventName(env *eventsv1.Envelope) string {
	return oneofName(env.ProtoReflect(), eventOneof)
}

// oneofName is the full name of the message set in m's oneof, or "".
func oneofName(m protoreflect.Message, oneof protoreflect.OneofDescriptor) string {
	fd := m.WhichOneof(oneof)
	if fd == nil {
		return ""
	}
	return string(fd.Message().FullName())
}

// ShortName is EventName without the package (ReferralReceived), as shown
// in timelines.
func ShortName(env *eventsv1.Envelope) string {
	fd := env.ProtoReflect().WhichOneof(eventOneof)
	if fd == nil {
		return ""
	}
	return string(fd.Message().Name())
}
