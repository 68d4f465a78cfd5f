package gpu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// mib is one MiB in bytes; NVML reports memory in bytes.
const mib = 1 << 20

// Open reads the inventory of this machine's GPUs through NVML. When
// libnvidia-ml.so.1 cannot be loaded or the kernel driver is not loaded, the
// error wraps ErrNoDriver with the reason; any other NVML failure at start-up
// is returned as it is. A device NVML cannot describe (one that fell off the
// bus) is left out of the inventory and logged; the others keep their NVML
// indexes. A nil logger logs nothing. Close the inventory when done.
func Open(logger *slog.Logger) (Inventory, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	inv, skipped, err := load(nvml.New(), false)
	if err != nil {
		return nil, err
	}
	for _, err := range skipped {
		logger.Warn("gpu left out of the inventory", slog.Any("error", err))
	}
	logger.Info("gpu inventory read through nvml", slog.Int("gpus", len(inv.devs)),
		slog.String("driver_version", inv.driver))
	return inv, nil
}

// inventory is an Inventory read through an nvml.Interface: the real library
// for Open, go-nvml's mocks for Simulated.
type inventory struct {
	devs   []Device
	driver string
	// renew, when set, builds a fresh lib; Usage swaps it in after every
	// renewEvery reads. go-nvml's mocks record every call they answer and
	// never forget one, so a simulated inventory sampled for days would
	// otherwise grow without bound.
	renew      func() nvml.Interface
	renewEvery int

	// mu guards the fields below.
	mu      sync.Mutex
	lib     nvml.Interface
	handles map[int]nvml.Device
	reads   int
	closed  bool
}

var _ Inventory = (*inventory)(nil)

// load initializes lib and reads its devices. It returns the devices it could
// not read as skipped; err is set only when nothing could be read.
func load(lib nvml.Interface, simulated bool) (inv *inventory, skipped []error, err error) {
	if ret := lib.Init(); ret != nvml.SUCCESS {
		switch ret {
		case nvml.ERROR_LIBRARY_NOT_FOUND:
			return nil, nil, fmt.Errorf("%w: libnvidia-ml.so.1 not found (is the NVIDIA driver installed?)", ErrNoDriver)
		case nvml.ERROR_DRIVER_NOT_LOADED:
			return nil, nil, fmt.Errorf("%w: the NVIDIA kernel driver is not loaded (nvml: %v)", ErrNoDriver, ret)
		}
		return nil, nil, fmt.Errorf("nvml init: %w", ret)
	}
	defer func() {
		if err != nil {
			lib.Shutdown()
		}
	}()
	n, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, nil, fmt.Errorf("nvml device count: %w", ret)
	}
	inv = &inventory{lib: lib, handles: make(map[int]nvml.Device, n)}
	if v, ret := lib.SystemGetDriverVersion(); ret == nvml.SUCCESS {
		inv.driver = v
	}
	for i := range n {
		h, d, err := readDevice(lib, i)
		if err != nil {
			skipped = append(skipped, err)
			continue
		}
		d.Simulated = simulated
		inv.devs = append(inv.devs, d)
		inv.handles[i] = h
	}
	return inv, skipped, nil
}

// readDevice reads the description of the device at NVML index i.
func readDevice(lib nvml.Interface, i int) (nvml.Device, Device, error) {
	h, ret := lib.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		return nil, Device{}, fmt.Errorf("gpu %d: handle: %w", i, ret)
	}
	uuid, ret := h.GetUUID()
	if ret != nvml.SUCCESS {
		return nil, Device{}, fmt.Errorf("gpu %d: uuid: %w", i, ret)
	}
	name, ret := h.GetName()
	if ret != nvml.SUCCESS {
		return nil, Device{}, fmt.Errorf("gpu %d: name: %w", i, ret)
	}
	mem, ret := h.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return nil, Device{}, fmt.Errorf("gpu %d: memory: %w", i, ret)
	}
	return h, Device{Index: i, UUID: uuid, Model: name, MemoryMB: int64(mem.Total / mib)}, nil
}

// Devices implements Inventory.
func (inv *inventory) Devices() []Device {
	return append([]Device(nil), inv.devs...)
}

// Usage implements Inventory. NVML calls cannot be interrupted; ctx is only
// checked before they start.
func (inv *inventory) Usage(ctx context.Context) ([]Usage, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.closed {
		return nil, errClosed
	}
	if inv.renew != nil && inv.reads >= inv.renewEvery {
		if err := inv.renewLocked(); err != nil {
			return nil, err
		}
	}
	inv.reads++
	out := make([]Usage, 0, len(inv.devs))
	var errs []error
	for _, d := range inv.devs {
		u, err := readUsage(inv.handles[d.Index], d.Index)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, u)
	}
	return out, errors.Join(errs...)
}

// readUsage reads one device's load; a reading the device does not support
// is -1.
func readUsage(h nvml.Device, index int) (Usage, error) {
	u := Usage{Index: index, UtilizationPct: -1, MemoryUsedMB: -1}
	util, ret := h.GetUtilizationRates()
	switch ret {
	case nvml.SUCCESS:
		u.UtilizationPct = int(util.Gpu)
	case nvml.ERROR_NOT_SUPPORTED:
	default:
		return Usage{}, fmt.Errorf("gpu %d: utilization: %w", index, ret)
	}
	mem, ret := h.GetMemoryInfo()
	switch ret {
	case nvml.SUCCESS:
		u.MemoryUsedMB = int64(mem.Used / mib)
	case nvml.ERROR_NOT_SUPPORTED:
	default:
		return Usage{}, fmt.Errorf("gpu %d: memory: %w", index, ret)
	}
	return u, nil
}

// renewLocked swaps in a fresh lib from renew and looks the devices up in it
// again, through the same calls load makes.
func (inv *inventory) renewLocked() error {
	lib := inv.renew()
	if ret := lib.Init(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvml init: %w", ret)
	}
	handles := make(map[int]nvml.Device, len(inv.devs))
	for _, d := range inv.devs {
		h, ret := lib.DeviceGetHandleByIndex(d.Index)
		if ret != nvml.SUCCESS {
			lib.Shutdown()
			return fmt.Errorf("gpu %d: handle: %w", d.Index, ret)
		}
		handles[d.Index] = h
	}
	inv.lib.Shutdown()
	inv.lib, inv.handles, inv.reads = lib, handles, 0
	return nil
}

// Close implements Inventory.
func (inv *inventory) Close() error {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.closed {
		return nil
	}
	inv.closed = true
	if ret := inv.lib.Shutdown(); ret != nvml.SUCCESS {
		return fmt.Errorf("nvml shutdown: %w", ret)
	}
	return nil
}
