package session

// Test hooks for the external test package.

// NoSingleflight turns off m's in-process coalescing, leaving the store's
// compare-and-swap as the only guard.
func NoSingleflight(m *Manager) { m.sf = nil }

// MaxSecrets is the cap on store.Family.Secrets.
const MaxSecrets = maxSecrets
