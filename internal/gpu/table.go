package gpu

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// FormatTable writes devs as a table for people, with each device's reading
// from usage where there is one ("-" where there is none; usage may be nil).
// With no devices it writes one line saying so.
func FormatTable(w io.Writer, devs []Device, usage []Usage) error {
	if len(devs) == 0 {
		_, err := fmt.Fprintln(w, "no GPUs")
		return err
	}
	byIndex := make(map[int]Usage, len(usage))
	for _, u := range usage {
		byIndex[u.Index] = u
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tMODEL\tMEMORY\tUTIL\tMEMORY USED\tUUID")
	for _, d := range devs {
		util, used := "-", "-"
		if u, ok := byIndex[d.Index]; ok {
			if u.UtilizationPct >= 0 {
				util = fmt.Sprintf("%d%%", u.UtilizationPct)
			}
			if u.MemoryUsedMB >= 0 {
				used = fmt.Sprintf("%d MiB", u.MemoryUsedMB)
			}
		}
		uuid := d.UUID
		if d.Simulated {
			uuid += " (simulated)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d MiB\t%s\t%s\t%s\n", d.Index, d.Model, d.MemoryMB, util, used, uuid)
	}
	return tw.Flush()
}
