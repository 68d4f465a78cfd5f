package gpu

import (
	"cmp"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

const (
	// DefaultSimulatedModel is the model of simulated GPUs when none is given.
	DefaultSimulatedModel = "Simulated H100 80GB HBM3"
	// DefaultSimulatedMemoryMB is the memory of a simulated GPU whose model
	// names no size.
	DefaultSimulatedMemoryMB = 80 * 1024
	// maxSimulated is the most GPUs Simulated makes.
	maxSimulated = 64
	// simulatedRenewEvery is how many Usage reads a simulated inventory
	// answers from one set of mocks before it builds fresh ones.
	simulatedRenewEvery = 1024
)

// Simulated returns an inventory of n GPUs that do not exist, for developing
// and testing GPU scheduling on a machine without any. The devices are
// presented through go-nvml's mock package and read through the same code as
// Open's, so they look exactly like real ones except that Simulated is true.
//
// model defaults to DefaultSimulatedModel. memoryMB 0 takes the size from the
// model's name ("A100 40GB" has 40960 MiB), else DefaultSimulatedMemoryMB.
// UUIDs are deterministic: GPU-sim-00000000-0000-0000-0000-<12-hex-digit index>.
// Each Usage read moves every device's utilization along a fixed sequence, and
// its memory in use with it (half the memory at 100%).
func Simulated(n int, model string, memoryMB int64) (Inventory, error) {
	if n < 1 || n > maxSimulated {
		return nil, fmt.Errorf("simulated gpus: count must be between 1 and %d, not %d", maxSimulated, n)
	}
	if memoryMB < 0 {
		return nil, fmt.Errorf("simulated gpus: memory must not be negative, not %d MiB", memoryMB)
	}
	model = cmp.Or(strings.TrimSpace(model), DefaultSimulatedModel)
	if memoryMB == 0 {
		memoryMB = memoryFromModel(model)
	}
	sim := &simulation{model: model, memoryMB: memoryMB, gpus: make([]*simGPU, n)}
	for i := range sim.gpus {
		sim.gpus[i] = &simGPU{index: i, uuid: simulatedUUID(i)}
	}
	inv, _, err := load(sim.lib(), true)
	if err != nil {
		return nil, err
	}
	inv.driver = "simulated"
	inv.renew, inv.renewEvery = sim.lib, simulatedRenewEvery
	return inv, nil
}

// simulatedUUID is the UUID Simulated gives the device at index.
func simulatedUUID(index int) string {
	return fmt.Sprintf("GPU-sim-00000000-0000-0000-0000-%012x", index)
}

// modelMemory finds a size such as "80GB" in a model name.
var modelMemory = regexp.MustCompile(`(?i)\b(\d{1,4})\s*GB\b`)

// memoryFromModel is the memory, in MiB, a model's name announces, else
// DefaultSimulatedMemoryMB.
func memoryFromModel(model string) int64 {
	if m := modelMemory.FindStringSubmatch(model); m != nil {
		if gb, err := strconv.ParseInt(m[1], 10, 64); err == nil && gb > 0 {
			return gb * 1024
		}
	}
	return DefaultSimulatedMemoryMB
}

// simulation is the state of a set of simulated GPUs. It outlives the mocks
// that present it (see inventory.renew), so readings continue across them.
type simulation struct {
	model    string
	memoryMB int64
	gpus     []*simGPU
}

// simGPU is one simulated device's state.
type simGPU struct {
	index int
	uuid  string
	// reads counts utilization readings; each one moves the load on.
	reads atomic.Int64
	// util is the last utilization read, in percent.
	util atomic.Int64
}

// lib presents the simulation as an nvml.Interface built from go-nvml's
// mocks. It answers the calls load and Usage make; any other call panics, as
// go-nvml's mocks do for a method they were not given.
func (s *simulation) lib() nvml.Interface {
	devs := make([]nvml.Device, len(s.gpus))
	for i, g := range s.gpus {
		devs[i] = s.device(g)
	}
	return &mock.Interface{
		InitFunc:                   func() nvml.Return { return nvml.SUCCESS },
		ShutdownFunc:               func() nvml.Return { return nvml.SUCCESS },
		SystemGetDriverVersionFunc: func() (string, nvml.Return) { return "simulated", nvml.SUCCESS },
		DeviceGetCountFunc:         func() (int, nvml.Return) { return len(devs), nvml.SUCCESS },
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			if i < 0 || i >= len(devs) {
				return nil, nvml.ERROR_INVALID_ARGUMENT
			}
			return devs[i], nvml.SUCCESS
		},
	}
}

// device presents one simulated GPU as an nvml.Device.
func (s *simulation) device(g *simGPU) nvml.Device {
	total := uint64(s.memoryMB) * mib
	return &mock.Device{
		GetIndexFunc: func() (int, nvml.Return) { return g.index, nvml.SUCCESS },
		GetUUIDFunc:  func() (string, nvml.Return) { return g.uuid, nvml.SUCCESS },
		GetNameFunc:  func() (string, nvml.Return) { return s.model, nvml.SUCCESS },
		GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
			used := uint64(s.memoryMB*g.util.Load()/200) * mib
			return nvml.Memory{Total: total, Free: total - used, Used: used}, nvml.SUCCESS
		},
		GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) {
			k := g.reads.Add(1) - 1
			u := (int64(g.index)*29 + k*17) % 101
			g.util.Store(u)
			return nvml.Utilization{Gpu: uint32(u), Memory: uint32(u / 2)}, nvml.SUCCESS
		},
	}
}

// ParseSimulate parses the --simulate-gpus flag, N[:MODEL]: "2" is two GPUs of
// the default model (model ""), "4:A100 40GB" four of that model. N is between
// 1 and 64; a colon must be followed by a model.
func ParseSimulate(s string) (n int, model string, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, "", fmt.Errorf("simulated gpus: empty; want N or N:MODEL, such as 2 or 4:A100")
	}
	count, model, hasModel := strings.Cut(s, ":")
	n, err = strconv.Atoi(strings.TrimSpace(count))
	if err != nil {
		return 0, "", fmt.Errorf("simulated gpus %q: %q is not a number; want N or N:MODEL, such as 2 or 4:A100", s, count)
	}
	if n < 1 || n > maxSimulated {
		return 0, "", fmt.Errorf("simulated gpus %q: count must be between 1 and %d", s, maxSimulated)
	}
	model = strings.TrimSpace(model)
	if hasModel && model == "" {
		return 0, "", fmt.Errorf("simulated gpus %q: no model after the colon; want N or N:MODEL, such as 4:A100", s)
	}
	return n, model, nil
}
