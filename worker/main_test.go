package worker

import (
	"os"
	"testing"

	"github.com/jobgate/jobgate/internal/testenv"
)

func TestMain(m *testing.M) {
	code := testenv.Main(m)
	removeTestToolbox()
	os.Exit(code)
}
