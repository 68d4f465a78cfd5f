package worker

import (
	"os"
	"testing"

	"jobgate/internal/testenv"
)

func TestMain(m *testing.M) {
	code := testenv.Main(m)
	removeTestToolbox()
	os.Exit(code)
}
