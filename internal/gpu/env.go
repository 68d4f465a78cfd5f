package gpu

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// EnvFor is the environment that limits a host process (mode: process) to
// devs: CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES are their indexes,
// comma-separated ("0,2"), and CUDA_DEVICE_ORDER is PCI_BUS_ID, because NVML
// numbers devices in PCI bus order while CUDA by default puts the fastest
// first. With no devices the variables hide every GPU ("" and "void"), so a
// job that asked for none cannot use one by accident.
//
// A container given its devices through CDI (CDIDevices) sees them numbered
// from 0, so these host indexes must not be passed into it.
func EnvFor(devs []Device) map[string]string {
	ids := indexList(devs)
	nv := ids
	if len(devs) == 0 {
		nv = "void"
	}
	return map[string]string{
		"CUDA_VISIBLE_DEVICES":   ids,
		"NVIDIA_VISIBLE_DEVICES": nv,
		"CUDA_DEVICE_ORDER":      "PCI_BUS_ID",
	}
}

// CDIKind is the CDI kind of NVIDIA GPUs, as `nvidia-ctk cdi generate` names it.
const CDIKind = "nvidia.com/gpu"

// CDIDevices names devs for a container runtime that reads CDI specs
// (podman's --device): "nvidia.com/gpu=<index>" each.
func CDIDevices(devs []Device) []string {
	out := make([]string, len(devs))
	for i, d := range devs {
		out[i] = CDIKind + "=" + strconv.Itoa(d.Index)
	}
	return out
}

// cdiSpecDirs are where CDI specs live: static ones, then generated ones.
var cdiSpecDirs = []string{"/etc/cdi", "/var/run/cdi"}

// CDISpecPresent reports whether a CDI spec for NVIDIA GPUs is installed
// (`nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`): a .yaml, .yml or
// .json file in /etc/cdi or /var/run/cdi that mentions nvidia.com/gpu.
// Without one, podman cannot give containers GPUs by CDI name.
func CDISpecPresent() bool {
	return cdiSpecIn(cdiSpecDirs...)
}

// cdiSpecIn is CDISpecPresent over dirs.
func cdiSpecIn(dirs ...string) bool {
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".yaml", ".yml", ".json":
			default:
				continue
			}
			if e.IsDir() {
				continue
			}
			if fileMentions(filepath.Join(dir, e.Name()), []byte(CDIKind)) {
				return true
			}
		}
	}
	return false
}

// fileMentions reports whether the first 4 MiB of the file at path contain s.
func fileMentions(path string, s []byte) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4<<20))
	return err == nil && bytes.Contains(b, s)
}
