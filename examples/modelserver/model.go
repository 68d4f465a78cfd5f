package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// Model is iris-train's model.json (examples/iris-train: Model).
type Model struct {
	Kind     string      `json:"kind"`
	Features []string    `json:"features"`
	Classes  []string    `json:"classes"`
	Mean     []float64   `json:"mean"`
	Std      []float64   `json:"std"`
	Weights  [][]float64 `json:"weights"` // [class][feature]
	Biases   []float64   `json:"biases"`
}

// loadModel reads model.json at path, or in the folder path names.
func loadModel(path string) (*Model, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, "model.json")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read model: %w", err)
	}
	var m Model
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode model %s: %w", path, err)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	return &m, nil
}

func (m *Model) check() error {
	nf, nc := len(m.Mean), len(m.Classes)
	if m.Kind != "softmax_regression" {
		return fmt.Errorf("kind %q, want softmax_regression", m.Kind)
	}
	if nf == 0 || nc == 0 || len(m.Std) != nf || len(m.Weights) != nc || len(m.Biases) != nc {
		return fmt.Errorf("%d means, %d stds, %d classes, %d weight rows, %d biases do not fit together",
			nf, len(m.Std), nc, len(m.Weights), len(m.Biases))
	}
	for c, w := range m.Weights {
		if len(w) != nf {
			return fmt.Errorf("class %d has %d weights, want %d", c, len(w), nf)
		}
	}
	for j, s := range m.Std {
		if !(s > 0) {
			return fmt.Errorf("feature %d has standard deviation %v", j, s)
		}
	}
	return nil
}

// predict returns the class probabilities of one row of raw features.
func (m *Model) predict(x []float64) []float64 {
	p := make([]float64, len(m.Biases))
	hi := math.Inf(-1)
	for c := range p {
		p[c] = m.Biases[c]
		for j, v := range x {
			p[c] += m.Weights[c][j] * (v - m.Mean[j]) / m.Std[j]
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
