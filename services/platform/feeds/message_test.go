package feeds

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestOutboxEntryEncoding(t *testing.T) {
	for _, m := range []Message{
		{Subject: "lw.feed.gp.A81001.j1.referral_received", MsgID: "e1", EventID: "e1", Event: "referral_received",
			Body: json.RawMessage(`{"journey_id":"j1","notes":"ünïcode ✓"}`)},
		{Subject: "lw.feed.vcs.V1.o1.erased", MsgID: "e2", EventID: "e2", Event: "erased", Erase: "lw.feed.vcs.V1.o1.*", Body: json.RawMessage(`{}`)},
		{},
	} {
		raw := encodeMessage(m)
		got, err := decodeMessage(raw)
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if m.Body == nil {
			m.Body = json.RawMessage{}
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("decoded %+v, want %+v", got, m)
		}
		raw[len(raw)-1] ^= 0xff // the body is the decoder's own copy
		if !reflect.DeepEqual(got, m) {
			t.Fatal("the decoded body shares the stored bytes")
		}
		for i := range len(raw) - 1 {
			if _, err := decodeMessage(raw[:i]); err == nil && i > 0 {
				t.Fatalf("a truncated entry (%d of %d bytes) decoded", i, len(raw))
			}
		}
	}
	// An entry an earlier version stored as JSON is still read.
	old, _ := json.Marshal(Message{Subject: "s", MsgID: "m", EventID: "m", Event: "made", Body: json.RawMessage(`{"a":1}`)})
	m, err := decodeMessage(old)
	if err != nil || m.Subject != "s" || string(m.Body) != `{"a":1}` {
		t.Fatalf("a JSON entry: %+v, %v", m, err)
	}
	if _, err := decodeMessage([]byte{0x7f, 1, 2}); err == nil {
		t.Fatal("an unknown encoding decoded")
	}
}
