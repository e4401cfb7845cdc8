package events

// What a team's caseload shows of a journey, worked out here beside the
// rules so that every view counts the same way.

// FollowUpsToHold are the follow-ups the team is still to hold, in the
// order they were scheduled: the open ones of an open journey, and of a
// closed one too (check-ins after closure, and those booked before it
// closed: people are seen again after closure), none once the person has
// declined social prescribing.
func (s State) FollowUpsToHold() []FollowUp {
	if !s.Exists() || s.Declined {
		return nil
	}
	return s.OpenFollowUps()
}

// OnwardCounts counts the journey's onward referrals still awaiting the
// organisation's answer (sent) and those the person took up (accepted,
// attending or completed).
func (s State) OnwardCounts() (awaiting, taken int) {
	for _, o := range s.Onward {
		switch {
		case o.Status == OnwardSent:
			awaiting++
		case o.taken():
			taken++
		}
	}
	return awaiting, taken
}

// Waiting reports whether the journey is open and its person not yet
// reached: the team's waiting list.
func (s State) Waiting() bool { return s.Open() && !s.Contacted }
