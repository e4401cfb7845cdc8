package events

import eventsv1 "linkway/proto/linkway/events/v1"

// Guarded carries out Command only on a journey that Check accepts, judged
// on the very state Decide is given: how a party scopes its writes (a team
// acts only on journeys referred to it) with no read of the journey before
// the command. Check's error is returned as is and nothing is appended; a
// journey that does not exist reaches Check too (s.Exists() is false).
type Guarded struct {
	Command Command
	Check   func(s State) error
}

// commandName is the guarded command's: metrics and logs name what was done.
func (g Guarded) commandName() string {
	if g.Command == nil {
		return "guarded"
	}
	return g.Command.commandName()
}

// decideGuarded is Decide for a Guarded command.
func decideGuarded(s State, g Guarded) ([]*eventsv1.Envelope, error) {
	if g.Command == nil {
		return nil, Errorf(CodeInternal, "a guarded command without a command")
	}
	if g.Check != nil {
		if err := g.Check(s); err != nil {
			return nil, err
		}
	}
	return Decide(s, g.Command)
}
