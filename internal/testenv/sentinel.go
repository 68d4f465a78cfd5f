package testenv

import "testing"

// SentinelService is a primary, a replica and three sentinels on loopback.
type SentinelService struct {
	// URL is the redis+sentinel:// URL of the set.
	URL string
}

// Sentinel starts a Sentinel set for this test, stopped when it ends.
func Sentinel(t testing.TB) *SentinelService {
	t.Helper()
	skipOrFail(t, "testenv.Sentinel: not built yet")
	return nil
}
