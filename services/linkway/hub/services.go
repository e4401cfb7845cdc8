package hub

import (
	"context"
	"fmt"
	"slices"

	"linkway/services/admin"
	"linkway/services/directory"
	"linkway/services/linkwork"
	"linkway/services/outcomes"
	"linkway/services/platform"
	"linkway/services/referrals"
	"linkway/services/vcs"
)

// ServiceNames lists the services a hub can run, in start order.
var ServiceNames = []string{"directory", "referrals", "linkwork", "vcs", "outcomes", "admin"}

// Parties are the hub's running parties; a party the hub does not run is
// nil. The directory is always there (not serving unless run), because
// the others find community services through it.
type Parties struct {
	Directory *directory.Service
	Linkwork  *linkwork.Service
	VCS       *vcs.Service
	Outcomes  *outcomes.Service
	Admin     *admin.Service
}

// startParties starts the chosen services (nil: all): each adds its
// routes and starts its projections. The directory starts first, because
// the others find community services through it.
func (h *Hub) startParties(ctx context.Context, d platform.Deps, only []string) error {
	for _, name := range only {
		if !slices.Contains(ServiceNames, name) {
			return fmt.Errorf("unknown service %q (services: %v)", name, ServiceNames)
		}
	}
	run := func(name string) bool { return only == nil || slices.Contains(only, name) }
	dir, err := directory.New(ctx, directory.Config{
		JS: h.js, Orgs: h.orgs, Serve: run("directory"), HTTP: h.api, Projections: h.shared, Group: h.group,
		Log: h.cfg.Log, Metrics: h.registry, Replicas: h.cfg.Replicas, Demo: h.cfg.Demo,
	})
	if err != nil {
		return fmt.Errorf("start directory: %w", err)
	}
	d.Directory = dir
	h.parties.Directory = dir
	starts := []struct {
		name  string
		start func(context.Context, platform.Deps) error
	}{
		{"referrals", referrals.Start},
	}
	for _, s := range starts {
		if !run(s.name) {
			continue
		}
		if err := s.start(ctx, d); err != nil {
			return fmt.Errorf("start %s: %w", s.name, err)
		}
	}
	if run("linkwork") {
		if h.parties.Linkwork, err = linkwork.New(ctx, linkwork.Config{
			JS: h.js, Journal: h.store, Projections: h.shared, Audit: h.audit, Orgs: h.orgs, Directory: dir,
			HTTP: h.api, Log: h.cfg.Log, Metrics: h.registry, Replicas: h.cfg.Replicas, Settings: h.cfg.Linkwork,
		}); err != nil {
			return fmt.Errorf("start linkwork: %w", err)
		}
	}
	if run("vcs") {
		if h.parties.VCS, err = vcs.New(ctx, vcs.Config{
			JS: h.js, Journal: h.store, Projections: h.shared, Audit: h.audit, Orgs: h.orgs, Directory: dir,
			HTTP: h.api, Log: h.cfg.Log, Metrics: h.registry, Replicas: h.cfg.Replicas,
		}); err != nil {
			return fmt.Errorf("start vcs: %w", err)
		}
	}
	if run("outcomes") {
		if h.parties.Outcomes, err = outcomes.New(ctx, outcomes.Config{
			JS: h.js, Journal: h.store, Projections: h.local, Orgs: h.orgs, HTTP: h.api, Log: h.cfg.Log,
			Metrics: h.registry, Replicas: h.cfg.Replicas, Demo: h.cfg.Demo, Settings: h.cfg.Outcomes,
		}); err != nil {
			return fmt.Errorf("start outcomes: %w", err)
		}
	}
	if run("admin") {
		if h.parties.Admin, err = admin.New(ctx, admin.Config{
			Journal: h.store, Keyring: h.keyring, Audit: h.audit, HTTP: h.api, Log: h.cfg.Log,
		}); err != nil {
			return fmt.Errorf("start admin: %w", err)
		}
	}
	return nil
}
