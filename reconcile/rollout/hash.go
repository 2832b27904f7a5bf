package rollout

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// hash2 is FNV-1a of a, a separator and b, finished with a 64-bit mixer so
// that hosts with similar names spread over the order.
func hash2(a, b string) uint64 {
	h := fnvString(fnvOffset, a)
	h ^= 0xff
	h *= fnvPrime
	h = fnvString(h, b)
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// hashMembers identifies a member list; never 0 for a non-empty list.
func hashMembers(ms []string) uint64 {
	if len(ms) == 0 {
		return 0
	}
	h := uint64(fnvOffset)
	for _, m := range ms {
		h = fnvString(h, m)
		h ^= 0xff
		h *= fnvPrime
	}
	return h | 1
}

// attemptOf derives the attempt number from the manifest id, so that every
// host computes the same attempt without messages.
func attemptOf(manifestID string) uint32 {
	if manifestID == "" {
		return 0
	}
	return uint32(hash2("attempt", manifestID))
}
