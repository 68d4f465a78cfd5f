package gpu_test

import (
	"context"
	"fmt"
	"os"

	"github.com/jobgate/jobgate/internal/gpu"
)

// A worker without GPUs simulates two, places a job on one and exposes it to
// the job's process.
func Example() {
	inv, err := gpu.Simulated(2, "H100 80GB", 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer inv.Close()

	alloc := gpu.NewAllocator(inv.Devices())
	devs, err := alloc.Allocate("job-1", 1, "h100", 40000)
	if err != nil {
		fmt.Println(err)
		return
	}
	env := gpu.EnvFor(devs)
	fmt.Println("CUDA_VISIBLE_DEVICES=" + env["CUDA_VISIBLE_DEVICES"])
	fmt.Println(gpu.CDIDevices(devs))

	_, err = alloc.Allocate("job-2", 2, "h100", 0)
	fmt.Println(err)

	usage, _ := inv.Usage(context.Background())
	_ = gpu.FormatTable(os.Stdout, inv.Devices(), usage)
	// Output:
	// CUDA_VISIBLE_DEVICES=0
	// [nvidia.com/gpu=0]
	// not enough free GPUs: needs 2 h100 GPUs; 1 of 2 free
	// INDEX  MODEL      MEMORY     UTIL  MEMORY USED  UUID
	// 0      H100 80GB  81920 MiB  0%    0 MiB        GPU-sim-00000000-0000-0000-0000-000000000000 (simulated)
	// 1      H100 80GB  81920 MiB  29%   11878 MiB    GPU-sim-00000000-0000-0000-0000-000000000001 (simulated)
}
