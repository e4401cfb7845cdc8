package feeds

import "testing"

// Outbox keys sort in the feed's order and read back as their position.
func TestOutboxKeys(t *testing.T) {
	ps := []Position{{1, 0}, {1, 1}, {2, 0}, {255, 3}, {256, 0}, {1 << 40, 0}}
	for i, p := range ps {
		got, ok := ParseOutboxKey(OutboxKey(p))
		if !ok || got != p {
			t.Errorf("ParseOutboxKey(OutboxKey(%v)) = %v, %v", p, got, ok)
		}
		if i > 0 && (OutboxKey(ps[i-1]) >= OutboxKey(p) || !p.After(ps[i-1]) || ps[i-1].After(p)) {
			t.Errorf("%v does not come after %v", p, ps[i-1])
		}
	}
	if got := OutboxKey(Position{256, 0}); got[:len(outboxBlockPrefix(1))] != outboxBlockPrefix(1) {
		t.Errorf("sequence 256 is not in block 1: %s", got)
	}
	for _, k := range []string{"q.x", "q.000000000000.zzzzzzzzzzzzzzzz.0000", "t"} {
		if _, ok := ParseOutboxKey(k); ok {
			t.Errorf("ParseOutboxKey(%q) read a position", k)
		}
	}
}
