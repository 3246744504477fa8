package session

// Test hooks for the external test package.

// NoSingleflight turns off m's in-process coalescing, leaving the store's
// compare-and-swap as the only guard.
func NoSingleflight(m *Manager) { m.sf = nil }

// Reforge returns rt (a keyed token) naming generation gen and carrying
// mac instead: the key tag stays, so only the MAC can tell it is forged.
func Reforge(rt string, gen uint64, mac []byte) string {
	t, err := parse(rt)
	if err != nil || t.legacy {
		panic("Reforge: not a keyed token")
	}
	return encode(t.id, gen, t.tag, mac)
}

// Generation returns the generation a keyed token names.
func Generation(rt string) uint64 {
	t, err := parse(rt)
	if err != nil || t.legacy {
		panic("Generation: not a keyed token")
	}
	return t.gen
}

// Legacy builds the tokens and the record fields of a family written
// before keyed MACs: secrets[i] is generation i+1's random secret; it
// returns their tokens, the hashes newest first, and the current secret
// sealed under the previous one (nil with one secret).
func Legacy(id string, secrets [][]byte) (tokens []string, hashes [][]byte, successor []byte) {
	for i, s := range secrets {
		tokens = append(tokens, encodeLegacy(id, s))
		hashes = append([][]byte{hashSecret(s)}, hashes...)
		if i > 0 {
			var err error
			if successor, err = seal(secrets[i-1], id, s); err != nil {
				panic(err)
			}
		}
	}
	return tokens, hashes, successor
}
