package devenv

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"testing"
)

// TestStartTiedSurvivesThreadExits: children started with Pdeathsig through
// StartTied live on while the Go runtime ends threads (a goroutine that
// exits while locked to its thread takes the thread with it). A child
// started from an ordinary goroutine gets its Pdeathsig when the thread
// that forked it is the one that ends; the podman service of the test
// binaries died that way in the middle of a run. (Started the old way,
// 19 of 20 such children died here.)
func TestStartTiedSurvivesThreadExits(t *testing.T) {
	const children = 5
	var cmds [children]*exec.Cmd
	var dones [children]<-chan error
	var wg sync.WaitGroup
	for i := range children {
		wg.Add(1)
		// Each from a goroutine of its own, so most are forked by threads
		// other than the main one (which the runtime never ends).
		go func() {
			defer wg.Done()
			cmd := exec.Command("sleep", "60")
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			done, err := StartTied(cmd)
			if err != nil {
				t.Error(err)
				return
			}
			cmds[i], dones[i] = cmd, done
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for i, cmd := range cmds {
			if cmd != nil {
				cmd.Process.Kill()
				<-dones[i]
			}
		}
	})
	if t.Failed() {
		return
	}
	for range 50 {
		var wg sync.WaitGroup
		for range 4 * runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runtime.LockOSThread() // no Unlock: the thread ends with the goroutine
			}()
		}
		wg.Wait()
	}
	for i, done := range dones {
		select {
		case err := <-done:
			cmds[i] = nil
			t.Errorf("child %d died while threads ended: %v", i, err)
		default:
		}
	}
}
