// Package linkwork is the linkwork service (work in progress: see its issue).
package linkwork

import (
	"context"

	"linkway/services/platform"
)

// Start adds the service's routes and starts its projections.
func Start(ctx context.Context, d platform.Deps) error { return nil }
