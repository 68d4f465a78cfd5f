// Command iris-train is jobgate's reference training job for the scoring
// path: a multinomial logistic regression (softmax, 4 features, 3 classes)
// trained by plain full-batch gradient descent on standardized features, on
// the Iris data embedded in the binary (Fisher 1936, 150 rows; iris.csv). It
// is deterministic: the same flags give the same model, bit for bit.
//
//   - It prints "::metric" lines on stdout (loss every -every epochs, and the
//     final loss and accuracy), which jobgate records as the job's metrics.
//   - It writes model.json to JOBGATE_OUTPUTS (the job's artifacts): weights,
//     biases, the features' means and standard deviations, and the class
//     names, the format /bin/modelserver serves.
//
// Usage: iris-train [-epochs N] [-lr RATE] [-every N] [-out DIR]
package main

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
)

//go:embed iris.csv
var irisCSV []byte

// Features and Classes name the model's inputs and outputs, in order.
var (
	Features = []string{"sepal_length", "sepal_width", "petal_length", "petal_width"}
	Classes  = []string{"setosa", "versicolor", "virginica"}
)

// Model is model.json.
type Model struct {
	Kind     string      `json:"kind"` // "softmax_regression"
	Features []string    `json:"features"`
	Classes  []string    `json:"classes"`
	Mean     []float64   `json:"mean"`    // per feature, subtracted first
	Std      []float64   `json:"std"`     // per feature, divided by next
	Weights  [][]float64 `json:"weights"` // [class][feature], on standardized features
	Biases   []float64   `json:"biases"`  // per class
	Epochs   int         `json:"epochs"`
	Loss     float64     `json:"loss"`
	Accuracy float64     `json:"accuracy"` // on the training data
}

func main() {
	epochs := flag.Int("epochs", 500, "passes over the data")
	lr := flag.Float64("lr", 0.5, "learning rate")
	every := flag.Int("every", 10, "print the loss every N epochs")
	out := flag.String("out", "", "folder for model.json (default: JOBGATE_OUTPUTS, else .)")
	flag.Parse()
	if *epochs < 1 || *lr <= 0 || *every < 1 {
		fail("-epochs and -every must be at least 1 and -lr above 0")
	}

	xs, ys, err := load(irisCSV)
	if err != nil {
		fail("read the embedded iris data: %v", err)
	}
	fmt.Printf("training a softmax regression on %d rows, %d epochs, lr %g\n", len(xs), *epochs, *lr)
	m := train(xs, ys, *epochs, *lr, func(epoch int, loss float64) {
		if epoch%*every == 0 {
			fmt.Printf("::metric name=loss value=%.6f step=%d\n", loss, epoch)
		}
	})
	fmt.Printf("::metric name=final_loss value=%.6f\n", m.Loss)
	fmt.Printf("::metric name=accuracy value=%.6f\n", m.Accuracy)

	dir := *out
	if dir == "" {
		dir = os.Getenv("JOBGATE_OUTPUTS")
	}
	if dir == "" {
		dir = "."
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		fail("encode model: %v", err)
	}
	path := filepath.Join(dir, "model.json")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		fail("write model: %v", err)
	}
	fmt.Println("model written to", path)
}

// load parses the CSV: a header, then four numbers and a class name a row.
func load(data []byte) (xs [][]float64, ys []int, err error) {
	rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		return nil, nil, err
	}
	for i, r := range rows[1:] {
		if len(r) != len(Features)+1 {
			return nil, nil, fmt.Errorf("row %d: %d fields, want %d", i+2, len(r), len(Features)+1)
		}
		x := make([]float64, len(Features))
		for j := range x {
			if x[j], err = strconv.ParseFloat(r[j], 64); err != nil {
				return nil, nil, fmt.Errorf("row %d: %w", i+2, err)
			}
		}
		y := -1
		for c, name := range Classes {
			if r[len(Features)] == name {
				y = c
			}
		}
		if y < 0 {
			return nil, nil, fmt.Errorf("row %d: unknown class %q", i+2, r[len(Features)])
		}
		xs, ys = append(xs, x), append(ys, y)
	}
	return xs, ys, nil
}

// train standardizes the features and runs epochs of full-batch gradient
// descent on the mean cross-entropy, from zero weights; progress gets each
// epoch's loss before its update.
func train(xs [][]float64, ys []int, epochs int, lr float64, progress func(epoch int, loss float64)) Model {
	nf, nc, n := len(Features), len(Classes), float64(len(xs))
	m := Model{
		Kind: "softmax_regression", Features: Features, Classes: Classes, Epochs: epochs,
		Mean: make([]float64, nf), Std: make([]float64, nf),
		Weights: make([][]float64, nc), Biases: make([]float64, nc),
	}
	for _, x := range xs {
		for j, v := range x {
			m.Mean[j] += v / n
		}
	}
	for _, x := range xs {
		for j, v := range x {
			m.Std[j] += (v - m.Mean[j]) * (v - m.Mean[j]) / n
		}
	}
	for j := range m.Std {
		m.Std[j] = math.Sqrt(m.Std[j])
	}
	zs := make([][]float64, len(xs))
	for i, x := range xs {
		zs[i] = m.standardize(x)
	}
	for c := range m.Weights {
		m.Weights[c] = make([]float64, nf)
	}

	for epoch := range epochs {
		gw := make([][]float64, nc)
		for c := range gw {
			gw[c] = make([]float64, nf)
		}
		gb := make([]float64, nc)
		loss := 0.0
		for i, z := range zs {
			p := m.probabilities(z)
			loss -= math.Log(math.Max(p[ys[i]], 1e-15))
			for c := range p {
				d := p[c]
				if c == ys[i] {
					d--
				}
				for j, v := range z {
					gw[c][j] += d * v
				}
				gb[c] += d
			}
		}
		if progress != nil {
			progress(epoch, loss/n)
		}
		for c := range m.Weights {
			for j := range m.Weights[c] {
				m.Weights[c][j] -= lr * gw[c][j] / n
			}
			m.Biases[c] -= lr * gb[c] / n
		}
	}

	right, loss := 0, 0.0
	for i, z := range zs {
		p := m.probabilities(z)
		loss -= math.Log(math.Max(p[ys[i]], 1e-15))
		if argmax(p) == ys[i] {
			right++
		}
	}
	m.Loss, m.Accuracy = loss/n, float64(right)/n
	return m
}

func (m *Model) standardize(x []float64) []float64 {
	z := make([]float64, len(x))
	for j, v := range x {
		z[j] = (v - m.Mean[j]) / m.Std[j]
	}
	return z
}

// probabilities is the softmax of the class scores of standardized features.
func (m *Model) probabilities(z []float64) []float64 {
	p := make([]float64, len(m.Biases))
	hi := math.Inf(-1)
	for c := range p {
		p[c] = m.Biases[c]
		for j, v := range z {
			p[c] += m.Weights[c][j] * v
		}
		hi = math.Max(hi, p[c])
	}
	sum := 0.0
	for c := range p {
		p[c] = math.Exp(p[c] - hi)
		sum += p[c]
	}
	for c := range p {
		p[c] /= sum
	}
	return p
}

func argmax(p []float64) int {
	best := 0
	for c := range p {
		if p[c] > p[best] {
			best = c
		}
	}
	return best
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "iris-train: "+format+"\n", args...)
	os.Exit(1)
}
