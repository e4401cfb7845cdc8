package journal

// MsgIDBase exposes msgIDBase to the tests.
var MsgIDBase = msgIDBase

// HoldCommits stops the committer from starting a round until release is
// called, so that a test can gather commands into one batch.
func (s *Store) HoldCommits() (release func()) {
	c := &s.commits
	hold := make(chan struct{})
	c.mu.Lock()
	c.hold = hold
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		c.hold = nil
		c.mu.Unlock()
		close(hold)
	}
}

// Queued is how many commands wait for the committer.
func (s *Store) Queued() int {
	c := &s.commits
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}
