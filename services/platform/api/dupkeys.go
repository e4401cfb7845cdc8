package api

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"linkway/events"
)

// DuplicateKey finds the first object key given twice in a JSON body, at
// any depth, and returns its path in dotted form ("patient.nhs_number",
// "goals[1].text"). encoding/json keeps the last of two equal keys, and
// matches field names without regard to case, so {"notes":..,"Notes":..}
// is a duplicate as well: two readers of one body (a proxy, a validator,
// this server) must never see different values. Where a body is not valid
// JSON, only a duplicate before the fault is found; the decoder reports
// the fault.
//
// It scans the bytes once without decoding values or allocating per
// value (encoding/json's Token walk is over a hundred times slower).
func DuplicateKey(body []byte) (path string, found bool) {
	type frame struct {
		object    bool
		expectKey bool
		keys      [][]byte // the object's keys so far, folded
		key       []byte   // the key whose value is being read, as given
		index     int      // an array's current element
	}
	var stack []frame
	push := func(object bool) {
		if len(stack) < cap(stack) { // reuse a popped frame's key list
			stack = stack[:len(stack)+1]
			f := &stack[len(stack)-1]
			*f = frame{object: object, expectKey: object, keys: f.keys[:0]}
			return
		}
		stack = append(stack, frame{object: object, expectKey: object})
	}
	// pathOf is where the value under the innermost key or index is.
	pathOf := func() string {
		var b strings.Builder
		for _, f := range stack {
			if f.object {
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.Write(f.key)
			} else {
				b.WriteString("[" + strconv.Itoa(f.index) + "]")
			}
		}
		return b.String()
	}
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '{':
			push(true)
		case '[':
			push(false)
		case '}', ']':
			if len(stack) == 0 {
				return "", false
			}
			stack = stack[:len(stack)-1]
		case ',':
			if len(stack) == 0 {
				return "", false
			}
			if f := &stack[len(stack)-1]; f.object {
				f.expectKey = true
			} else {
				f.index++
			}
		case '"':
			start := i + 1
			escaped := false
			for i++; i < len(body) && body[i] != '"'; i++ {
				if body[i] == '\\' {
					escaped = true
					i++
				}
			}
			if i >= len(body) {
				return "", false
			}
			if len(stack) == 0 || !stack[len(stack)-1].expectKey {
				continue // a value
			}
			f := &stack[len(stack)-1]
			f.expectKey = false
			f.key = body[start:i]
			if escaped {
				var s string
				if json.Unmarshal(body[start-1:i+1], &s) != nil {
					return "", false
				}
				f.key = []byte(s)
			}
			folded := fold(f.key)
			for _, k := range f.keys {
				if bytes.Equal(k, folded) {
					return pathOf(), true
				}
			}
			// Objects in request bodies have tens of keys at most; a linear
			// search is quicker than a map at that size, and a body is
			// bounded, so a huge object costs at most its limit squared / key
			// size comparisons of short keys.
			f.keys = append(f.keys, folded)
		}
		// Anything else (white space, ':', numbers, true, false, null) says
		// nothing about keys.
	}
	return "", false
}

// fold is a key as encoding/json compares field names: without regard to
// case (ASCII quickly, the rest by Unicode lower case).
func fold(k []byte) []byte {
	for _, c := range k {
		if c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			return bytes.ToLower(k)
		}
	}
	return k
}

// RejectDuplicateKeys is invalid_argument naming the first key a JSON body
// gives twice (see DuplicateKey), or nil.
func RejectDuplicateKeys(body []byte) error {
	if path, found := DuplicateKey(body); found {
		return events.Invalid(path, "is given more than once; each field may appear only once")
	}
	return nil
}
