package gpu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxh100"
	"github.com/google/go-cmp/cmp"
)

func TestSimulatedDevices(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		n         int
		model     string
		memoryMB  int64
		wantModel string
		wantMem   int64
	}{
		{name: "defaults", n: 3, wantModel: DefaultSimulatedModel, wantMem: 81920},
		{name: "model without size", n: 1, model: "A100", wantModel: "A100", wantMem: DefaultSimulatedMemoryMB},
		{name: "size from model", n: 2, model: " NVIDIA A100-SXM4 40GB ", wantModel: "NVIDIA A100-SXM4 40GB", wantMem: 40960},
		{name: "explicit memory", n: 1, model: "L4", memoryMB: 23034, wantModel: "L4", wantMem: 23034},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inv, err := Simulated(tt.n, tt.model, tt.memoryMB)
			if err != nil {
				t.Fatal(err)
			}
			defer inv.Close()
			var want []Device
			for i := range tt.n {
				want = append(want, Device{Index: i, UUID: fmt.Sprintf("GPU-sim-00000000-0000-0000-0000-%012x", i),
					Model: tt.wantModel, MemoryMB: tt.wantMem, Simulated: true})
			}
			if diff := cmp.Diff(want, inv.Devices()); diff != "" {
				t.Errorf("Devices() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSimulatedRejectsBadArguments(t *testing.T) {
	t.Parallel()
	for _, args := range []struct {
		n   int
		mem int64
	}{{0, 0}, {-1, 0}, {65, 0}, {1, -5}} {
		if inv, err := Simulated(args.n, "", args.mem); err == nil {
			inv.Close()
			t.Errorf("Simulated(%d, \"\", %d): no error", args.n, args.mem)
		}
	}
}

// TestSimulatedUsage checks that readings come through the mock and move on
// with every read, along the documented deterministic sequence.
func TestSimulatedUsage(t *testing.T) {
	t.Parallel()
	inv, err := Simulated(3, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer inv.Close()
	ctx := context.Background()
	want := [][]Usage{
		{{Index: 0, UtilizationPct: 0, MemoryUsedMB: 0}, {Index: 1, UtilizationPct: 29, MemoryUsedMB: 11878}, {Index: 2, UtilizationPct: 58, MemoryUsedMB: 23756}},
		{{Index: 0, UtilizationPct: 17, MemoryUsedMB: 6963}, {Index: 1, UtilizationPct: 46, MemoryUsedMB: 18841}, {Index: 2, UtilizationPct: 75, MemoryUsedMB: 30720}},
	}
	for i, w := range want {
		got, err := inv.Usage(ctx)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if diff := cmp.Diff(w, got); diff != "" {
			t.Errorf("read %d (-want +got):\n%s", i, diff)
		}
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := inv.Usage(canceled); !errors.Is(err, context.Canceled) {
		t.Errorf("Usage with a done context: %v, want context.Canceled", err)
	}
	if err := inv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := inv.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := inv.Usage(ctx); err == nil {
		t.Error("Usage after Close: no error")
	}
	if len(inv.Devices()) != 3 {
		t.Errorf("Devices after Close: %d devices, want 3", len(inv.Devices()))
	}
}

// TestSimulatedRenewsMocks checks that a simulated inventory swaps in fresh
// mocks (go-nvml's mocks record every call forever) without a jump in the
// readings.
func TestSimulatedRenewsMocks(t *testing.T) {
	t.Parallel()
	i, err := Simulated(1, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	inv := i.(*inventory)
	inv.renewEvery = 3
	for k := range 10 {
		us, err := inv.Usage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if want := k * 17 % 101; us[0].UtilizationPct != want {
			t.Errorf("read %d: utilization %d%%, want %d%%", k, us[0].UtilizationPct, want)
		}
		inv.mu.Lock()
		calls := len(inv.handles[0].(*mock.Device).GetUtilizationRatesCalls())
		inv.mu.Unlock()
		if calls > 3 {
			t.Fatalf("read %d: the mock device has recorded %d calls, want at most 3", k, calls)
		}
	}
}

// faultyLib is a mock NVML of three devices whose calls return what the
// test sets in rets ("init", "count", "name1", "util1", ...); unset ones
// succeed.
func faultyLib(rets map[string]nvml.Return) *mock.Interface {
	ret := func(key string) nvml.Return {
		if r, ok := rets[key]; ok {
			return r
		}
		return nvml.SUCCESS
	}
	dev := func(i int) nvml.Device {
		k := func(s string) string { return fmt.Sprint(s, i) }
		return &mock.Device{
			GetUUIDFunc: func() (string, nvml.Return) { return fmt.Sprint("GPU-", i), ret(k("uuid")) },
			GetNameFunc: func() (string, nvml.Return) { return "NVIDIA L4", ret(k("name")) },
			GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
				return nvml.Memory{Total: 23034 * mib, Used: 512 * mib}, ret(k("mem"))
			},
			GetUtilizationRatesFunc: func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{Gpu: 7}, ret(k("util")) },
		}
	}
	devs := []nvml.Device{dev(0), dev(1), dev(2)}
	return &mock.Interface{
		InitFunc:                   func() nvml.Return { return ret("init") },
		ShutdownFunc:               func() nvml.Return { return nvml.SUCCESS },
		SystemGetDriverVersionFunc: func() (string, nvml.Return) { return "550.54.15", nvml.SUCCESS },
		DeviceGetCountFunc:         func() (int, nvml.Return) { return len(devs), ret("count") },
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) { return devs[i], ret(fmt.Sprint("handle", i)) },
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		rets         map[string]nvml.Return
		noDriver     bool
		wantRet      nvml.Return
		wantShutdown int
	}{
		{name: "library missing", rets: map[string]nvml.Return{"init": nvml.ERROR_LIBRARY_NOT_FOUND}, noDriver: true, wantRet: nvml.SUCCESS},
		{name: "driver not loaded", rets: map[string]nvml.Return{"init": nvml.ERROR_DRIVER_NOT_LOADED}, noDriver: true, wantRet: nvml.SUCCESS},
		{name: "no permission", rets: map[string]nvml.Return{"init": nvml.ERROR_NO_PERMISSION}, wantRet: nvml.ERROR_NO_PERMISSION},
		{name: "count fails", rets: map[string]nvml.Return{"count": nvml.ERROR_UNKNOWN}, wantRet: nvml.ERROR_UNKNOWN, wantShutdown: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lib := faultyLib(tt.rets)
			_, _, err := load(lib, false)
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, ErrNoDriver); got != tt.noDriver {
				t.Errorf("errors.Is(%q, ErrNoDriver) = %v, want %v", err, got, tt.noDriver)
			}
			if tt.wantRet != nvml.SUCCESS && !errors.Is(err, tt.wantRet) {
				t.Errorf("error %q does not wrap %v", err, tt.wantRet)
			}
			if got := len(lib.ShutdownCalls()); got != tt.wantShutdown {
				t.Errorf("Shutdown called %d times, want %d", got, tt.wantShutdown)
			}
		})
	}
}

func TestLoadSkipsBrokenDevice(t *testing.T) {
	t.Parallel()
	inv, skipped, err := load(faultyLib(map[string]nvml.Return{"name1": nvml.ERROR_GPU_IS_LOST}), false)
	if err != nil {
		t.Fatal(err)
	}
	defer inv.Close()
	if len(skipped) != 1 || !errors.Is(skipped[0], nvml.ERROR_GPU_IS_LOST) || !strings.Contains(skipped[0].Error(), "gpu 1") {
		t.Errorf("skipped = %v, want one ERROR_GPU_IS_LOST for gpu 1", skipped)
	}
	want := []Device{{Index: 0, UUID: "GPU-0", Model: "NVIDIA L4", MemoryMB: 23034}, {Index: 2, UUID: "GPU-2", Model: "NVIDIA L4", MemoryMB: 23034}}
	if diff := cmp.Diff(want, inv.Devices()); diff != "" {
		t.Errorf("Devices() (-want +got):\n%s", diff)
	}
}

func TestUsagePartialReadings(t *testing.T) {
	t.Parallel()
	rets := map[string]nvml.Return{"util0": nvml.ERROR_NOT_SUPPORTED, "util1": nvml.ERROR_GPU_IS_LOST, "mem2": nvml.ERROR_NOT_SUPPORTED}
	// Memory info is read at load too; fail it only for readings.
	lib := faultyLib(nil)
	inv, _, err := load(lib, false)
	if err != nil {
		t.Fatal(err)
	}
	defer inv.Close()
	inv.handles = map[int]nvml.Device{}
	faulty := faultyLib(rets)
	for i := range 3 {
		inv.handles[i], _ = faulty.DeviceGetHandleByIndex(i)
	}
	got, err := inv.Usage(context.Background())
	if !errors.Is(err, nvml.ERROR_GPU_IS_LOST) || !strings.Contains(err.Error(), "gpu 1") {
		t.Errorf("error = %v, want gpu 1's ERROR_GPU_IS_LOST", err)
	}
	want := []Usage{{Index: 0, UtilizationPct: -1, MemoryUsedMB: 512}, {Index: 2, UtilizationPct: 7, MemoryUsedMB: -1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Usage (-want +got):\n%s", diff)
	}
}

// TestReadsGoNVMLServerMock reads go-nvml's own DGX H100 mock server, whose
// devices are built by NVIDIA rather than by this package.
func TestReadsGoNVMLServerMock(t *testing.T) {
	t.Parallel()
	inv, skipped, err := load(dgxh100.New(), false)
	if err != nil || len(skipped) > 0 {
		t.Fatalf("load: %v, skipped %v", err, skipped)
	}
	defer inv.Close()
	devs := inv.Devices()
	if len(devs) != 8 {
		t.Fatalf("%d devices, want 8", len(devs))
	}
	for i, d := range devs {
		if d.Index != i || d.Model != "NVIDIA H100 80GB HBM3" || d.MemoryMB != 81920 || !strings.HasPrefix(d.UUID, "GPU-") || d.Simulated {
			t.Errorf("device %d = %+v", i, d)
		}
	}
	if inv.driver != "550.54.15" {
		t.Errorf("driver version %q, want 550.54.15", inv.driver)
	}
}

// TestOpenWithoutDriver runs the real NVML loader. On a machine without the
// NVIDIA driver it must say so with ErrNoDriver; where NVML works the test
// has nothing to check.
func TestOpenWithoutDriver(t *testing.T) {
	inv, err := Open(nil)
	if err == nil {
		n := len(inv.Devices())
		inv.Close()
		t.Skipf("NVML works on this machine (%d GPUs); nothing to check without a driver", n)
	}
	if !errors.Is(err, ErrNoDriver) {
		t.Skipf("NVML is installed here but unusable (%v); ErrNoDriver is for a missing driver", err)
	}
	if !strings.Contains(err.Error(), "libnvidia-ml") && !strings.Contains(err.Error(), "driver") {
		t.Errorf("error %q does not say what is missing", err)
	}
}

func testDevices() []Device {
	return []Device{
		{Index: 0, UUID: "GPU-0", Model: "NVIDIA H100 80GB HBM3", MemoryMB: 81559},
		{Index: 1, UUID: "GPU-1", Model: "NVIDIA H100 80GB HBM3", MemoryMB: 81559},
		{Index: 2, UUID: "GPU-2", Model: "NVIDIA A100-SXM4-40GB", MemoryMB: 40960},
		{Index: 3, UUID: "GPU-3", Model: "NVIDIA A100-SXM4-80GB", MemoryMB: 81920},
	}
}

func indexes(devs []Device) []int {
	out := []int{}
	for _, d := range devs {
		out = append(out, d.Index)
	}
	return out
}

func TestAllocatorFilters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		n       int
		model   string
		minMem  int64
		want    []int
		wantErr string
	}{
		{name: "any model", n: 3, want: []int{0, 1, 2}},
		{name: "model any case", n: 2, model: "h100", want: []int{0, 1}},
		{name: "model and memory", n: 1, model: "A100", minMem: 80000, want: []int{3}},
		{name: "memory only", n: 3, minMem: 80000, want: []int{0, 1, 3}},
		{name: "zero", n: 0, model: "nothing", want: []int{}},
		{name: "too many of a model", n: 3, model: "A100",
			wantErr: "not enough free GPUs: needs 3 A100 GPUs; 2 of 2 free"},
		{name: "too much memory", n: 1, minMem: 100000,
			wantErr: "not enough free GPUs: needs 1 GPU with at least 100000 MiB; none of this worker's 4 GPUs match"},
		{name: "unknown model", n: 1, model: "L4",
			wantErr: "not enough free GPUs: needs 1 L4 GPU; none of this worker's 4 GPUs match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := NewAllocator(testDevices())
			got, err := a.Allocate("job-1", tt.n, tt.model, tt.minMem)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInsufficient) || err.Error() != tt.wantErr {
					t.Errorf("error = %v, want %q wrapping ErrInsufficient", err, tt.wantErr)
				}
				if len(a.Allocated()) != 0 {
					t.Errorf("a failed Allocate left allocations: %v", a.Allocated())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, indexes(got)); diff != "" {
				t.Errorf("allocated (-want +got):\n%s", diff)
			}
			if tt.n > 0 && !a.Fits(tt.n, tt.model, tt.minMem) {
				t.Errorf("Fits(%d, %q, %d) = false for a request that was met", tt.n, tt.model, tt.minMem)
			}
		})
	}
}

func TestAllocatorLifecycle(t *testing.T) {
	t.Parallel()
	a := NewAllocator(testDevices()[:2])
	if _, err := a.Allocate("job-a", 1, "H100", 0); err != nil {
		t.Fatal(err)
	}
	_, err := a.Allocate("job-b", 2, "H100", 0)
	if want := "not enough free GPUs: needs 2 H100 GPUs; 1 of 2 free"; !errors.Is(err, ErrInsufficient) || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
	if !a.Fits(2, "H100", 0) || a.Fits(3, "H100", 0) || a.Fits(1, "A100", 0) {
		t.Error("Fits should ignore allocations and count only matching devices")
	}
	if got := a.Free("h100", 0); got != 1 {
		t.Errorf("Free = %d, want 1", got)
	}

	// Asking again for the same job returns what it holds.
	again, err := a.Allocate("job-a", 1, "H100", 0)
	if err != nil || len(again) != 1 || again[0].Index != 0 {
		t.Errorf("Allocate again = %v, %v; want device 0", again, err)
	}
	if _, err := a.Allocate("job-a", 2, "", 0); err == nil || errors.Is(err, ErrInsufficient) {
		t.Errorf("Allocate more for a job that holds devices: %v, want a plain error", err)
	}

	m := a.Allocated()
	if diff := cmp.Diff(map[int]string{0: "job-a"}, m); diff != "" {
		t.Errorf("Allocated (-want +got):\n%s", diff)
	}
	m[1] = "intruder"
	if a.Free("", 0) != 1 {
		t.Error("changing Allocated's map changed the allocator")
	}

	a.Release("job-a")
	a.Release("job-never")
	if got := a.Free("", 0); got != 2 {
		t.Errorf("Free after Release = %d, want 2", got)
	}
	if got, err := a.Allocate("job-b", 2, "H100", 0); err != nil || len(got) != 2 {
		t.Errorf("Allocate after Release = %v, %v", got, err)
	}

	for _, bad := range []struct {
		job string
		n   int
	}{{"", 1}, {"job-c", -1}} {
		if _, err := a.Allocate(bad.job, bad.n, "", 0); err == nil || errors.Is(err, ErrInsufficient) {
			t.Errorf("Allocate(%q, %d): %v, want a plain error", bad.job, bad.n, err)
		}
	}

	empty := NewAllocator(nil)
	if _, err := empty.Allocate("job-d", 1, "", 0); err == nil || !strings.HasSuffix(err.Error(), "this worker has no GPUs") {
		t.Errorf("Allocate on a worker without GPUs: %v", err)
	}
}

// TestAllocatorNeverDoubleAllocates has many jobs grab, hold and release
// devices at once; each device records its holder, and a second holder at
// the same time is a double allocation.
func TestAllocatorNeverDoubleAllocates(t *testing.T) {
	t.Parallel()
	const devices, jobs, rounds = 8, 64, 200
	var devs []Device
	for i := range devices {
		devs = append(devs, Device{Index: i, UUID: fmt.Sprint("GPU-", i), Model: "H100", MemoryMB: 81920})
	}
	a := NewAllocator(devs)
	var holder [devices]atomic.Int64 // job number + 1; 0 when free
	var granted atomic.Int64
	var wg sync.WaitGroup
	for j := range jobs {
		wg.Go(func() {
			job := fmt.Sprint("job-", j)
			for r := range rounds {
				got, err := a.Allocate(job, 1+(j+r)%3, "h100", 0)
				if errors.Is(err, ErrInsufficient) {
					continue
				}
				if err != nil {
					t.Errorf("%s: %v", job, err)
					return
				}
				granted.Add(1)
				for _, d := range got {
					if !holder[d.Index].CompareAndSwap(0, int64(j+1)) {
						t.Errorf("device %d given to %s while job-%d holds it", d.Index, job, holder[d.Index].Load()-1)
					}
				}
				for _, d := range got {
					holder[d.Index].Store(0)
				}
				a.Release(job)
			}
		})
	}
	wg.Wait()
	if granted.Load() == 0 {
		t.Error("no allocation succeeded")
	}
	if got := a.Allocated(); len(got) != 0 {
		t.Errorf("allocations left after every job released: %v", got)
	}
}

func TestEnvAndCDI(t *testing.T) {
	t.Parallel()
	devs := testDevices()
	tests := []struct {
		name    string
		devs    []Device
		wantEnv map[string]string
		wantCDI []string
	}{
		{name: "two", devs: []Device{devs[0], devs[2]},
			wantEnv: map[string]string{"CUDA_VISIBLE_DEVICES": "0,2", "NVIDIA_VISIBLE_DEVICES": "0,2", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"},
			wantCDI: []string{"nvidia.com/gpu=0", "nvidia.com/gpu=2"}},
		{name: "one", devs: devs[3:],
			wantEnv: map[string]string{"CUDA_VISIBLE_DEVICES": "3", "NVIDIA_VISIBLE_DEVICES": "3", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"},
			wantCDI: []string{"nvidia.com/gpu=3"}},
		{name: "none hides every GPU",
			wantEnv: map[string]string{"CUDA_VISIBLE_DEVICES": "", "NVIDIA_VISIBLE_DEVICES": "void", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"},
			wantCDI: []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.wantEnv, EnvFor(tt.devs)); diff != "" {
				t.Errorf("EnvFor (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantCDI, CDIDevices(tt.devs)); diff != "" {
				t.Errorf("CDIDevices (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCDISpecIn(t *testing.T) {
	t.Parallel()
	write := func(t *testing.T, dir, name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		files map[string]string
		want  bool
	}{
		{name: "empty"},
		{name: "nvidia yaml", files: map[string]string{"nvidia.yaml": "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\n"}, want: true},
		{name: "nvidia json", files: map[string]string{"nvidia.JSON": `{"kind":"nvidia.com/gpu"}`}, want: true},
		{name: "other vendor", files: map[string]string{"amd.yaml": "kind: amd.com/gpu\n"}},
		{name: "not a spec file", files: map[string]string{"notes.txt": "nvidia.com/gpu"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for name, content := range tt.files {
				write(t, dir, name, content)
			}
			if got := cdiSpecIn(filepath.Join(dir, "missing"), dir); got != tt.want {
				t.Errorf("cdiSpecIn = %v, want %v", got, tt.want)
			}
		})
	}
	// The real directories must not break the call, whatever this machine has.
	_ = CDISpecPresent()
}

func TestParseSimulate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in        string
		wantN     int
		wantModel string
		wantErr   string
	}{
		{in: "2", wantN: 2},
		{in: " 4:A100 ", wantN: 4, wantModel: "A100"},
		{in: "1:NVIDIA H100 80GB HBM3", wantN: 1, wantModel: "NVIDIA H100 80GB HBM3"},
		{in: "8:a:b", wantN: 8, wantModel: "a:b"},
		{in: "64", wantN: 64},
		{in: "", wantErr: "empty"},
		{in: "two", wantErr: "not a number"},
		{in: ":A100", wantErr: "not a number"},
		{in: "0", wantErr: "between 1 and 64"},
		{in: "-1", wantErr: "between 1 and 64"},
		{in: "65", wantErr: "between 1 and 64"},
		{in: "2:", wantErr: "no model after the colon"},
		{in: "2: ", wantErr: "no model after the colon"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			n, model, err := ParseSimulate(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ParseSimulate(%q) = %d, %q, %v; want an error mentioning %q", tt.in, n, model, err, tt.wantErr)
				}
				return
			}
			if err != nil || n != tt.wantN || model != tt.wantModel {
				t.Errorf("ParseSimulate(%q) = %d, %q, %v; want %d, %q", tt.in, n, model, err, tt.wantN, tt.wantModel)
			}
		})
	}
}

func TestSample(t *testing.T) {
	t.Parallel()
	inv, err := Simulated(3, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer inv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan []Usage)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Sample(ctx, inv, time.Millisecond, []int{1}, func(us []Usage) {
			select {
			case got <- us:
			case <-ctx.Done():
			}
		})
	}()
	var utils []int
	deadline := time.After(10 * time.Second)
	for len(utils) < 3 {
		select {
		case us := <-got:
			if len(us) != 1 || us[0].Index != 1 {
				t.Fatalf("sample %v, want device 1 only", us)
			}
			utils = append(utils, us[0].UtilizationPct)
		case <-deadline:
			t.Fatalf("got %d samples in 10s, want 3", len(utils))
		}
	}
	if diff := cmp.Diff([]int{29, 46, 63}, utils); diff != "" {
		t.Errorf("utilization of device 1 over samples (-want +got):\n%s", diff)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Sample did not return after its context was canceled")
	}
}

func TestFormatTableAndJSON(t *testing.T) {
	t.Parallel()
	devs := []Device{
		{Index: 0, UUID: "GPU-a", Model: "NVIDIA H100 80GB HBM3", MemoryMB: 81559},
		{Index: 1, UUID: "GPU-sim-b", Model: "Simulated H100", MemoryMB: 81920, Simulated: true},
	}
	usage := []Usage{{Index: 0, UtilizationPct: 42, MemoryUsedMB: 1024}}
	var b bytes.Buffer
	if err := FormatTable(&b, devs, usage); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"INDEX  MODEL                  MEMORY     UTIL  MEMORY USED  UUID\n" +
		"0      NVIDIA H100 80GB HBM3  81559 MiB  42%   1024 MiB     GPU-a\n" +
		"1      Simulated H100         81920 MiB  -     -            GPU-sim-b (simulated)\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("FormatTable (-want +got):\n%s", diff)
	}
	b.Reset()
	if err := FormatTable(&b, nil, nil); err != nil || b.String() != "no GPUs\n" {
		t.Errorf("FormatTable of nothing = %q, %v", b.String(), err)
	}

	j, err := json.Marshal(struct {
		D Device `json:"d"`
		U Usage  `json:"u"`
	}{devs[1], usage[0]})
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"d":{"index":1,"uuid":"GPU-sim-b","model":"Simulated H100","memory_mb":81920,"simulated":true},` +
		`"u":{"index":0,"utilization_pct":42,"memory_used_mb":1024}}`
	if string(j) != wantJSON {
		t.Errorf("JSON = %s\nwant   %s", j, wantJSON)
	}
}
