package queue_test

import (
	"os"
	"testing"

	"github.com/jobgate/jobgate/internal/testenv"
)

// TestMain stops what testenv.Redis started ahead for this binary (the
// spare Sentinel sets and Clusters) and removes their folders.
func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }
