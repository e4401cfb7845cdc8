// Package referrals is the referrals service (work in progress: see its issue).
package referrals

import (
	"context"

	"linkway/services/platform"
)

// Start adds the service's routes and starts its projections.
func Start(ctx context.Context, d platform.Deps) error { return nil }
