// Package outcomes is the outcomes service (work in progress: see its issue).
package outcomes

import (
	"context"

	"linkway/services/platform"
)

// Start adds the service's routes and starts its projections.
func Start(ctx context.Context, d platform.Deps) error { return nil }
