package events

import "slices"

// What unmet need counts of a journey, worked out here beside the rules so
// that the directory's unmet-need view and any other count agree.

// DeclineReason is the reason a decline is counted under: one of
// DeclineReasons, or "other" for what the log holds outside them (events
// written before the list, or with none).
func DeclineReason(reason string) string {
	if slices.Contains(DeclineReasons, reason) {
		return reason
	}
	return "other"
}

// Awaiting reports whether the onward referral still waits for the
// organisation's answer.
func (o Onward) Awaiting() bool { return o.Status == OnwardSent }

// NeedCategories are the journey's needs in the taxonomy, sorted, each
// once: those last assessed, or, until an assessment placed any, the
// referral's reasons placed in the taxonomy (ReasonNeed).
func (s State) NeedCategories() []string {
	var out []string
	if len(s.Needs) > 0 {
		out = slices.Clone(s.Needs)
	} else {
		for _, r := range s.Referral.GetReasons() {
			if c, ok := ReasonNeed(r); ok {
				out = append(out, c)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
