// Package orgs is the register of organisations that use Linkway: GP
// practices, link-worker teams, VCS organisations, commissioners, community
// panels and operators, with what each commissions. It lives in a KV bucket
// and is mirrored in memory by every process.
package orgs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"linkway/events"
	"linkway/services/platform/kvmirror"
)

// Bucket holds one JSON record per organisation, keyed by its code.
const Bucket = "lw_orgs"

// Organisation is one registered organisation.
type Organisation struct {
	ID   string      `json:"id"`
	Name string      `json:"name"`
	Kind events.Kind `json:"kind"`
	// Commissions lists the link-worker teams a commissioner pays for.
	Commissions []string `json:"commissions,omitempty"`
	// Contact is how others reach the organisation (a team's duty line).
	Contact string `json:"contact,omitempty"`
	// Teams lists the link-worker teams a GP practice or other referrer
	// refers to (`linkway orgs add --team`).
	Teams []string `json:"teams,omitempty"`
	// Sector is the kind of agency a referrer is (housing, social_care,
	// ...): its referrals carry it as their source (`linkway orgs add
	// --sector`). Only referrers have one.
	Sector events.Sector `json:"sector,omitempty"`
	// Disabled organisations keep their history, but their keys no longer
	// work (`linkway orgs disable`).
	Disabled bool `json:"disabled,omitempty"`
}

// ValidCode reports whether s can be an organisation code (the rule is
// events.ValidOrgCode, which the directory's rules use too).
func ValidCode(s string) bool { return events.ValidOrgCode(s) }

// Registry is the register.
type Registry struct {
	kv     jetstream.KeyValue
	mirror *kvmirror.Mirror
}

// Open opens the register and starts mirroring it until ctx ends.
func Open(ctx context.Context, js jetstream.JetStream, replicas int) (*Registry, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: Bucket, Description: "Linkway organisations", Storage: jetstream.FileStorage,
		Replicas: max(replicas, 1), History: 5,
	})
	if err != nil {
		return nil, fmt.Errorf("organisations bucket: %w", err)
	}
	m, err := kvmirror.New(ctx, kv)
	if err != nil {
		return nil, err
	}
	return &Registry{kv: kv, mirror: m}, nil
}

// Put registers or updates an organisation.
func (r *Registry) Put(ctx context.Context, o Organisation) error {
	if !ValidCode(o.ID) {
		return fmt.Errorf("organisation code %q is not valid", o.ID)
	}
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if _, err := r.kv.Put(ctx, o.ID, b); err != nil {
		return err
	}
	return r.await(ctx, o.ID, b)
}

// await waits for a write of ours to reach the mirror, so the next read
// sees it. The change channel is taken before the check: taken after, a
// change landing in between would be missed and the wait would never end.
func (r *Registry) await(ctx context.Context, id string, b []byte) error {
	for {
		changed := r.mirror.Changed()
		if got, ok := r.mirror.Get(id); ok && bytes.Equal(got, b) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// Get returns an organisation by code.
func (r *Registry) Get(id string) (Organisation, bool) {
	b, ok := r.mirror.Get(id)
	if !ok {
		return Organisation{}, false
	}
	var o Organisation
	if err := json.Unmarshal(b, &o); err != nil {
		return Organisation{}, false
	}
	return o, true
}

// Is reports whether id is a registered organisation of kind k.
func (r *Registry) Is(id string, k events.Kind) bool {
	o, ok := r.Get(id)
	return ok && o.Kind == k
}

// All returns every organisation, by code.
func (r *Registry) All() []Organisation {
	var out []Organisation
	for _, kv := range r.mirror.Scan("") {
		var o Organisation
		if json.Unmarshal(kv.Value, &o) == nil {
			out = append(out, o)
		}
	}
	return out
}

// CommissionersOf returns the commissioners that commission a team.
func (r *Registry) CommissionersOf(team string) []string {
	var out []string
	for _, o := range r.All() {
		if o.Kind == events.KindCommissioner {
			for _, t := range o.Commissions {
				if t == team {
					out = append(out, o.ID)
				}
			}
		}
	}
	return out
}
