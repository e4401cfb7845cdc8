package hub

import (
	"context"
	"fmt"
	"slices"

	"linkway/services/admin"
	"linkway/services/directory"
	"linkway/services/linkwork"
	"linkway/services/outcomes"
	"linkway/services/referrals"
	"linkway/services/vcs"
)

// ServiceNames lists the services a hub can run, in start order.
var ServiceNames = []string{"directory", "referrals", "linkwork", "vcs", "outcomes", "admin"}

// Parties are the hub's running parties, for tests and tools; a party the
// hub does not run is nil. The directory is always there (serving only
// when run), because the others find community services through it.
type Parties struct {
	Directory *directory.Service
	Referrals *referrals.Service
	Linkwork  *linkwork.Service
	VCS       *vcs.Service
	Outcomes  *outcomes.Service
	Admin     *admin.Service
}

// startParties starts the chosen services (nil: all), each given what it
// uses of the hub: it adds its routes, starts its projections (run in the
// hub's group) and returns. The directory starts first, because the others
// find community services through it. ctx is the hub's run: it ends when
// the hub stops.
func (h *Hub) startParties(ctx context.Context, only []string) (err error) {
	for _, name := range only {
		if !slices.Contains(ServiceNames, name) {
			return fmt.Errorf("unknown service %q (services: %v)", name, ServiceNames)
		}
	}
	run := func(name string) bool { return only == nil || slices.Contains(only, name) }
	log, p := h.cfg.Log, &h.parties
	if p.Directory, err = directory.New(ctx, directory.Config{
		JS: h.js, Orgs: h.orgs, Serve: run("directory"), HTTP: h.api, Views: h.views, Group: h.group,
		Log: log, Metrics: h.registry, Replicas: h.cfg.Replicas, Demo: h.cfg.Demo,
	}); err != nil {
		return fmt.Errorf("start directory: %w", err)
	}
	if run("referrals") {
		if p.Referrals, err = referrals.New(ctx, referrals.Config{
			Journal: h.store, Views: h.views, Audit: h.audit, Orgs: h.orgs, HTTP: h.api,
			Log: log, Metrics: h.registry, Settings: h.cfg.Referrals,
			JS: h.js, Leases: h.leases, Group: h.group, Replicas: h.cfg.Replicas, // FEED_GP, by lease like FEED_VCS
		}); err != nil {
			return fmt.Errorf("start referrals: %w", err)
		}
	}
	if run("linkwork") {
		if p.Linkwork, err = linkwork.New(ctx, linkwork.Config{
			JS: h.js, Journal: h.store, Views: h.views, PersonRef: h.keyring.PersonRef, Audit: h.audit, Orgs: h.orgs,
			Directory: p.Directory, HTTP: h.api, Log: log, Metrics: h.registry, Replicas: h.cfg.Replicas, Settings: h.cfg.Linkwork,
		}); err != nil {
			return fmt.Errorf("start linkwork: %w", err)
		}
	}
	if run("vcs") {
		if p.VCS, err = vcs.New(ctx, vcs.Config{
			JS: h.js, Journal: h.store, Views: h.views, Group: h.group, Leases: h.leases, Audit: h.audit, Orgs: h.orgs, Directory: p.Directory,
			HTTP: h.api, Log: log, Metrics: h.registry, Replicas: h.cfg.Replicas,
		}); err != nil {
			return fmt.Errorf("start vcs: %w", err)
		}
	}
	if run("outcomes") {
		// Its view is on the one reader; its feed is published by the
		// replica holding the feed's lease.
		// A tool reading a --demo folder (DemoKey) pseudonymises with the
		// demo folder's key, as its hub does.
		if p.Outcomes, err = outcomes.New(ctx, outcomes.Config{
			JS: h.js, Journal: h.store, Views: h.views, Group: h.group, Leases: h.leases, Orgs: h.orgs, HTTP: h.api,
			Log: log, Metrics: h.registry, Replicas: h.cfg.Replicas, Demo: h.cfg.Demo || h.cfg.DemoKey && demoFolder(h.cfg.Data), Settings: h.cfg.Outcomes,
		}); err != nil {
			return fmt.Errorf("start outcomes: %w", err)
		}
	}
	if run("admin") {
		if p.Admin, err = admin.New(ctx, admin.Config{
			Journal: h.store, Keyring: h.keyring, Audit: h.audit, HTTP: h.api, Log: log,
		}); err != nil {
			return fmt.Errorf("start admin: %w", err)
		}
	}
	return nil
}
