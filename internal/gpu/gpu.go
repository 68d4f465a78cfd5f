// Package gpu is a worker's view of its NVIDIA GPUs: the inventory it reads
// through NVML (github.com/NVIDIA/go-nvml), or a simulated one presented
// through go-nvml's own mock package and read by the same code; the per-worker
// Allocator that hands devices to jobs and never gives one to two jobs; the
// environment and CDI device names that expose the chosen devices to a job;
// and a sampler of utilization and memory use.
//
// Open needs cgo (go-nvml is a cgo package) but not the NVIDIA driver at build
// time: libnvidia-ml.so.1 is loaded when Open runs, and its absence is the
// error ErrNoDriver, never a crash.
package gpu

import (
	"context"
	"errors"
)

// Device is one GPU of a worker.
type Device struct {
	// Index is NVML's index of the device (PCI bus order), the number
	// CUDA_VISIBLE_DEVICES and CDI device names use (see EnvFor).
	Index int `json:"index"`
	// UUID is the device's NVML UUID ("GPU-..."); simulated devices have
	// deterministic ones ("GPU-sim-...").
	UUID string `json:"uuid"`
	// Model is the device's product name as NVML reports it, such as
	// "NVIDIA H100 80GB HBM3".
	Model string `json:"model"`
	// MemoryMB is the device's total memory in MiB.
	MemoryMB int64 `json:"memory_mb"`
	// Simulated is true for devices made by Simulated.
	Simulated bool `json:"simulated"`
}

// Usage is one reading of a device's load.
type Usage struct {
	// Index is the Device's Index.
	Index int `json:"index"`
	// UtilizationPct is the percentage of the last sample period in which a
	// kernel ran on the device; -1 when the device does not report it.
	UtilizationPct int `json:"utilization_pct"`
	// MemoryUsedMB is the device memory in use, in MiB; -1 when the device
	// does not report it.
	MemoryUsedMB int64 `json:"memory_used_mb"`
}

// Inventory is the set of GPUs of one worker.
type Inventory interface {
	// Devices lists the devices, ordered by Index. It does not change after
	// the inventory is made, and still answers after Close.
	Devices() []Device
	// Usage reads every device's current load. It returns the readings it
	// could take; the error, when not nil, names the devices it could not
	// read (a device that fell off the bus) or says the inventory is closed.
	Usage(ctx context.Context) ([]Usage, error)
	// Close releases NVML. A second Close does nothing.
	Close() error
}

// ErrNoDriver means NVML cannot be used on this machine: libnvidia-ml.so.1 is
// not installed or the NVIDIA kernel driver is not loaded. Open wraps it with
// the reason. A worker treats it as "this machine has no GPUs".
var ErrNoDriver = errors.New("no NVIDIA driver")

// ErrInsufficient means a worker cannot give a job the GPUs it asks for now.
// Allocator.Allocate wraps it with what was asked and what is free.
var ErrInsufficient = errors.New("not enough free GPUs")

// errClosed is Usage's error after Close.
var errClosed = errors.New("gpu inventory closed")
