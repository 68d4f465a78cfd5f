// Command toolbox is the workload in jobgate's example image: one small static
// binary whose subcommands act out what a real job does (print, read its
// environment, fail, run long, ignore SIGTERM, flood its output), so tests and
// the README can exercise executors without a real training script.
//
// Usage:
//
//	toolbox echo ARGS...             print ARGS joined by spaces
//	toolbox env NAME                 print the value of $NAME
//	toolbox exit CODE                exit with CODE
//	toolbox sleep SECONDS [--ignore-term]
//	                                 print "sleeping", then sleep; on SIGTERM print
//	                                 "got SIGTERM" and exit 143, or keep sleeping
//	                                 with --ignore-term
//	toolbox lines N                  print "line 000001" ... "line N"
//	toolbox bigline BYTES            print one line of BYTES 'x'
//	toolbox stderr MSG               print MSG to stderr
//	toolbox mixed N                  print N lines, alternating "out i" on stdout
//	                                 and "err i" on stderr
//	toolbox now                      print the current time as Unix nanoseconds
//	                                 (benchmarks: when did the workload start?)
//	toolbox write PATH TEXT...       write TEXT (joined by spaces) and a newline to PATH
//	toolbox cat PATH                 print the file at PATH
//	toolbox ls DIR                   print every file under DIR as "path size", sorted
//	toolbox pwd                      print the working folder
package main

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: toolbox echo|env|exit|sleep|lines|bigline|stderr|mixed|now|write|cat|ls|pwd ARGS...")
	}
	cmd, args := os.Args[1], os.Args[2:]
	switch cmd {
	case "echo":
		fmt.Println(strings.Join(args, " "))
	case "env":
		fmt.Println(os.Getenv(arg(args, 0)))
	case "exit":
		os.Exit(num(arg(args, 0)))
	case "sleep":
		sleep(num(arg(args, 0)), len(args) > 1 && args[1] == "--ignore-term")
	case "lines":
		w := bufio.NewWriter(os.Stdout)
		for i := 1; i <= num(arg(args, 0)); i++ {
			fmt.Fprintf(w, "line %06d\n", i)
		}
		flush(w)
	case "bigline":
		w := bufio.NewWriter(os.Stdout)
		w.WriteString(strings.Repeat("x", num(arg(args, 0))) + "\n")
		flush(w)
	case "stderr":
		fmt.Fprintln(os.Stderr, strings.Join(args, " "))
	case "mixed":
		// Unbuffered on purpose: each line is its own write, so a reader can
		// check that the interleaving survives.
		for i := 1; i <= num(arg(args, 0)); i++ {
			if i%2 == 1 {
				fmt.Fprintf(os.Stdout, "out %d\n", i)
			} else {
				fmt.Fprintf(os.Stderr, "err %d\n", i)
			}
		}
	case "now":
		fmt.Println(time.Now().UnixNano())
	case "write":
		if err := os.WriteFile(arg(args, 0), []byte(strings.Join(args[1:], " ")+"\n"), 0o644); err != nil {
			fail("write: %v", err)
		}
	case "cat":
		b, err := os.ReadFile(arg(args, 0))
		if err != nil {
			fail("cat: %v", err)
		}
		os.Stdout.Write(b)
	case "ls":
		list(arg(args, 0))
	case "pwd":
		dir, err := os.Getwd()
		if err != nil {
			fail("pwd: %v", err)
		}
		fmt.Println(dir)
	default:
		fail("unknown subcommand %q", cmd)
	}
}

// list prints every regular file under root, relative to it, with its size.
func list(root string) {
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		fmt.Printf("%s %d\n", filepath.ToSlash(rel), info.Size())
		return nil
	})
	if err != nil {
		fail("ls: %v", err)
	}
}

func sleep(seconds int, ignoreTerm bool) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	fmt.Println("sleeping")
	deadline := time.After(time.Duration(seconds) * time.Second)
	for {
		select {
		case <-deadline:
			return
		case <-sig:
			fmt.Println("got SIGTERM")
			if !ignoreTerm {
				os.Exit(143)
			}
		}
	}
}

func arg(args []string, i int) string {
	if i >= len(args) {
		fail("missing argument %d", i+1)
	}
	return args[i]
}

func num(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		fail("not a count: %q", s)
	}
	return n
}

func flush(w *bufio.Writer) {
	if err := w.Flush(); err != nil {
		fail("write stdout: %v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "toolbox: "+format+"\n", args...)
	os.Exit(2)
}
