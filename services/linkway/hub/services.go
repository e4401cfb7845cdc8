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

// startServices starts the chosen services (nil: all) on d: each adds its
// routes and starts its projections. The directory starts first, because
// the others find community services through it.
func startServices(ctx context.Context, d platform.Deps, only []string) error {
	for _, name := range only {
		if !slices.Contains(ServiceNames, name) {
			return fmt.Errorf("unknown service %q (services: %v)", name, ServiceNames)
		}
	}
	run := func(name string) bool { return only == nil || slices.Contains(only, name) }
	dir, err := directory.Start(ctx, d, run("directory"))
	if err != nil {
		return fmt.Errorf("start directory: %w", err)
	}
	d.Directory = dir
	starts := []struct {
		name  string
		start func(context.Context, platform.Deps) error
	}{
		{"referrals", referrals.Start},
		{"linkwork", linkwork.Start},
		{"vcs", vcs.Start},
		{"outcomes", outcomes.Start},
		{"admin", admin.Start},
	}
	for _, s := range starts {
		if !run(s.name) {
			continue
		}
		if err := s.start(ctx, d); err != nil {
			return fmt.Errorf("start %s: %w", s.name, err)
		}
	}
	return nil
}
