package websession

import "context"

// failureSubject is what a client's failures for one organisation are
// counted under (the client alone counts its failures for any).
func failureSubject(client, org string) string { return client + "\x00org\x00" + org }

// throttled reports whether a client may not try to sign in just now: too
// many failures lately for the organisation its key names, or for any.
func (s *Sessions) throttled(ctx context.Context, client, org string) (bool, error) {
	now := s.cfg.Now()
	pair, err := s.failures(ctx, failureSubject(client, org))
	if err != nil {
		return false, err
	}
	if len(pair.recent(now)) >= MaxFailures {
		return true, nil
	}
	all, err := s.failures(ctx, client)
	if err != nil {
		return false, err
	}
	return len(all.recent(now)) >= MaxClientFailures, nil
}

// countFailure counts a failed sign-in for the organisation and for the
// client.
func (s *Sessions) countFailure(ctx context.Context, client, org string) error {
	if err := s.signInFailed(ctx, failureSubject(client, org)); err != nil {
		return err
	}
	return s.signInFailed(ctx, client)
}
