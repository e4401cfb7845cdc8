package orgs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	"linkway/services/platform/api"
)

// maxName bounds an organisation's name.
const maxName = 200

// linksTeams are the kinds whose organisations link to link-worker teams:
// practices and referrers refer to them, commissioners pay for them.
var linksTeams = []events.Kind{events.KindGP, events.KindCommissioner, events.KindReferrer}

// ErrExists is returned by Add for a code already registered.
var ErrExists = errors.New("organisation already registered")

// ErrNotRegistered is returned for a code that is not registered.
var ErrNotRegistered = errors.New("no registered organisation")

// Add registers a new organisation (`linkway orgs add`): a valid code not
// yet registered, a known kind, a name, and for practices, referrers and
// commissioners the link-worker teams they link to, each registered.
// A commissioner's teams are the teams it commissions. A referrer has a
// sector (events.Sectors; other_agency when none is given).
func (r *Registry) Add(ctx context.Context, o Organisation, teams []string) error {
	o.Name = strings.TrimSpace(o.Name)
	switch {
	case !ValidCode(o.ID):
		return events.Invalid("code", "%q is not an organisation code (letters, digits and '-', up to 32)", o.ID)
	case !slices.Contains(events.Kinds, o.Kind):
		return events.Invalid("kind", "must be one of %v", events.Kinds)
	case o.Name == "" || len(o.Name) > maxName:
		return events.Invalid("name", "is required, at most %d characters", maxName)
	case len(teams) > 0 && !slices.Contains(linksTeams, o.Kind):
		return events.Invalid("team", "only a %v organisation links to link-worker teams", linksTeams)
	case o.Sector != "" && o.Kind != events.KindReferrer:
		return events.Invalid("sector", "only a referrer organisation has a sector")
	case o.Sector != "" && !slices.Contains(events.Sectors, o.Sector):
		return events.Invalid("sector", "must be one of %v", events.Sectors)
	}
	if o.Kind == events.KindReferrer && o.Sector == "" {
		o.Sector = events.SectorOtherAgency // its referrals need a source
	}
	for _, t := range teams {
		if !r.Is(t, events.KindLinkwork) {
			return events.Invalid("team", "%q is not a registered link-worker team", t)
		}
	}
	if o.Kind == events.KindCommissioner {
		o.Commissions = teams
	} else {
		o.Teams = teams
	}
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if _, err := r.kv.Create(ctx, o.ID, b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("%w: %s", ErrExists, o.ID)
		}
		return fmt.Errorf("register %s: %w", o.ID, err)
	}
	return r.await(ctx, o.ID, b)
}

// SetDisabled disables an organisation (its keys stop working at once on
// every replica, its history stays) or enables it again.
func (r *Registry) SetDisabled(ctx context.Context, id string, disabled bool) error {
	for range 5 {
		e, err := r.kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return fmt.Errorf("%w: %s", ErrNotRegistered, id)
		}
		if err != nil {
			return err
		}
		var o Organisation
		if err := json.Unmarshal(e.Value(), &o); err != nil {
			return fmt.Errorf("organisation %s: %w", id, err)
		}
		o.Disabled = disabled
		b, err := json.Marshal(o)
		if err != nil {
			return err
		}
		if _, err := r.kv.Update(ctx, id, b, e.Revision()); errors.Is(err, jetstream.ErrKeyExists) {
			continue // written meanwhile: read it again
		} else if err != nil {
			return err
		}
		return r.await(ctx, id, b)
	}
	return fmt.Errorf("organisation %s: changed too often meanwhile", id)
}

// Active reports whether id is registered and not disabled.
func (r *Registry) Active(id string) bool {
	o, ok := r.Get(id)
	return ok && !o.Disabled
}

// ActiveKeys are keys that work only while their organisation is
// registered and not disabled: a disabled organisation's keys are
// unknown keys (401), at once and on every replica, without touching the
// keys themselves.
func (r *Registry) ActiveKeys(keys api.Keys) api.Keys { return activeKeys{keys, r} }

type activeKeys struct {
	keys api.Keys
	r    *Registry
}

func (a activeKeys) Lookup(ctx context.Context, key string) (api.Principal, bool, error) {
	p, ok, err := a.keys.Lookup(ctx, key)
	if err != nil || !ok {
		return p, ok, err
	}
	if !a.r.Active(p.OrgID) {
		return api.Principal{}, false, nil
	}
	return p, true, nil
}
