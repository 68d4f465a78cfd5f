package worker

// StartStore is what starting an attempt needs of the store, for tests that
// wrap the store to inject faults (SetStartStore).
type StartStore = startStore

// SetStartStore makes w start attempts through s.
func SetStartStore(w *Worker, s StartStore) { w.starts = s }

// SetPortPicker makes w give every replica the port pick returns, instead
// of a free one; call it before w runs.
func SetPortPicker(w *Worker, pick func() int) { w.ports.pick = pick }
