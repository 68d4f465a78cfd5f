package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestIrisData(t *testing.T) {
	xs, ys, err := load(irisCSV)
	if err != nil {
		t.Fatal(err)
	}
	if len(xs) != 150 {
		t.Fatalf("%d rows, want 150", len(xs))
	}
	counts := make([]int, len(Classes))
	for _, y := range ys {
		counts[y]++
	}
	if !reflect.DeepEqual(counts, []int{50, 50, 50}) {
		t.Errorf("class counts %v, want 50 each", counts)
	}
	// Known rows of Fisher's table (1-based row numbers), rows 35 and 38 as
	// Fisher printed them (UCI's iris.data has two typos there).
	known := map[int][]float64{
		1: {5.1, 3.5, 1.4, 0.2}, 35: {4.9, 3.1, 1.5, 0.2}, 38: {4.9, 3.6, 1.4, 0.1},
		51: {7.0, 3.2, 4.7, 1.4}, 101: {6.3, 3.3, 6.0, 2.5}, 150: {5.9, 3.0, 5.1, 1.8},
	}
	for row, want := range known {
		if !reflect.DeepEqual(xs[row-1], want) {
			t.Errorf("row %d: %v, want %v", row, xs[row-1], want)
		}
	}
	// The well-known column means: 5.843, 3.057, 3.758, 1.199.
	m := train(xs, ys, 1, 0.1, nil)
	for j, want := range []float64{5.8433, 3.0573, 3.7580, 1.1993} {
		if d := m.Mean[j] - want; d > 1e-4 || d < -1e-4 {
			t.Errorf("mean of %s: %.4f, want %.4f", Features[j], m.Mean[j], want)
		}
	}
}

func TestTrainReachesAccuracyDeterministically(t *testing.T) {
	xs, ys, err := load(irisCSV)
	if err != nil {
		t.Fatal(err)
	}
	var losses []float64
	a := train(xs, ys, 500, 0.5, func(_ int, loss float64) { losses = append(losses, loss) })
	if a.Accuracy < 0.95 {
		t.Errorf("training accuracy %.4f, want at least 0.95", a.Accuracy)
	}
	if len(losses) != 500 || losses[len(losses)-1] >= losses[0] {
		t.Errorf("losses: %d of them, first %v, last %v; want 500, falling", len(losses), losses[0], losses[len(losses)-1])
	}
	b := train(xs, ys, 500, 0.5, nil)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("two trainings differ:\n%+v\n%+v", a, b)
	}
}

// TestMainWritesModelAndMetrics runs the program as a job does: metric lines
// on stdout, model.json in JOBGATE_OUTPUTS.
func TestMainWritesModelAndMetrics(t *testing.T) {
	if os.Getenv("IRIS_TRAIN_AS_MAIN") == "1" {
		os.Args = []string{"iris-train", "-epochs", "200"}
		main()
		os.Exit(0)
	}
	out := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMainWritesModelAndMetrics$")
	cmd.Env = append(os.Environ(), "IRIS_TRAIN_AS_MAIN=1", "JOBGATE_OUTPUTS="+out)
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("iris-train: %v\n%s", err, stdout)
	}
	for _, want := range []string{"::metric name=loss value=", " step=190\n", "::metric name=accuracy value=0.9"} {
		if !strings.Contains(string(stdout), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "model.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m Model
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Weights) != 3 || len(m.Weights[0]) != 4 || len(m.Biases) != 3 || len(m.Mean) != 4 || len(m.Std) != 4 ||
		!reflect.DeepEqual(m.Classes, []string{"setosa", "versicolor", "virginica"}) {
		t.Errorf("model.json has the wrong shape: %s", b)
	}
}
