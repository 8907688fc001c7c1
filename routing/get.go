package routing

// Get returns the instance dbid in orch (case-insensitive), or nil: the
// lookup of a connection routed earlier, whose instance a reload may have
// changed or removed. Like Lookup, it is O(1) in the number of instances
// and does not allocate.
func (t *Table) Get(dbid, orch string) *Instance {
	if len(dbid)+1+len(orch) > maxKey {
		return nil
	}
	var buf [maxKey]byte
	key := appendLower(appendLower(buf[:0], dbid), ".")
	key = appendLower(key, orch)
	return t.instances[string(key)] // no allocation: the compiler does not copy key here
}
