package sealing

import "context"

// MintBatch exposes the pool's batch writer to the tests: the ids of n
// keys it stored.
func (k *Keyring) MintBatch(ctx context.Context, n int) ([]string, error) {
	pks, err := k.mintBatch(ctx, n)
	ids := make([]string, len(pks))
	for i, pk := range pks {
		ids[i] = pk.id
	}
	return ids, err
}
