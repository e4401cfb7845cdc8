package feeds

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// An outbox entry at rest: a version byte, then the message's fields as
// length-prefixed strings (uvarint lengths) in a fixed order, the body
// last and as rendered. JSON, as earlier versions stored it, cost the
// reader a second pass over every body (a json.RawMessage is validated
// and compacted again); entries stored as JSON are still read.
const messageV1 = 0x01

func encodeMessage(m Message) []byte {
	fields := [...]string{m.Subject, m.MsgID, m.EventID, m.Event, m.Erase}
	n := 1 + len(m.Body) + binary.MaxVarintLen64*(len(fields)+1)
	for _, f := range fields {
		n += len(f)
	}
	b := make([]byte, 0, n)
	b = append(b, messageV1)
	for _, f := range fields {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Body)))
	return append(b, m.Body...)
}

var errMessage = errors.New("outbox entry: truncated or unknown encoding")

// decodeMessage reads an entry; what it returns holds none of b.
func decodeMessage(b []byte) (Message, error) {
	if len(b) > 0 && b[0] == '{' {
		var m Message
		if err := json.Unmarshal(b, &m); err != nil {
			return Message{}, fmt.Errorf("outbox entry: %w", err)
		}
		return m, nil
	}
	if len(b) == 0 || b[0] != messageV1 {
		return Message{}, errMessage
	}
	b = b[1:]
	var fields [6][]byte
	for i := range fields {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return Message{}, errMessage
		}
		fields[i], b = b[k:k+int(n)], b[k+int(n):]
	}
	if len(b) != 0 {
		return Message{}, errMessage
	}
	return Message{Subject: string(fields[0]), MsgID: string(fields[1]), EventID: string(fields[2]),
		Event: string(fields[3]), Erase: string(fields[4]), Body: bytes.Clone(fields[5])}, nil
}
