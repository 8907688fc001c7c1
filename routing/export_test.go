package routing

// SetParseHook makes s call hook before it parses each value (in Load and
// in applying the watch), so that a test can hold a reload mid-parse. Set
// it before Load.
func SetParseHook(s *EtcdSource, hook func(key string)) { s.parseHook = hook }

// EntryBomb is an instance document whose aliases blow it up, and the
// line its refusal names.
func EntryBomb() (doc string, line int) { b := entryBombs()[0]; return b.doc, b.line }
