// state-bench: Task.State round trips from Go's ttrpc client (the one
// containerd uses) to one shim socket: warm-up calls, then sequential calls,
// then the same number shared by -c callers on one connection. Prints one JSON
// document; bench/go-state-rpc.mjs runs it against runc's shim and shimlab's
// in the same run and prints the ratios.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/ttrpc"

	"shimlab.local/interop/internal/rawttrpc"
)

type result struct {
	Callers int     `json:"callers"`
	Calls   int     `json:"calls"`
	Seconds float64 `json:"seconds"`
	Rate    float64 `json:"rate"`
	P50     float64 `json:"p50_us"`
	P99     float64 `json:"p99_us"`
}

func main() {
	address := flag.String("address", "", "the shim's address")
	id := flag.String("id", "", "a task's id")
	calls := flag.Int("n", 10000, "calls per measurement")
	warmup := flag.Int("warmup", 1000, "calls before measuring")
	callers := flag.String("c", "1,16", "comma-separated numbers of concurrent callers, one measurement each")
	flag.Parse()
	if *address == "" || *id == "" {
		fmt.Fprintln(os.Stderr, "usage: state-bench -address <shim address> -id <task id> [-n 10000] [-warmup 1000] [-c 1,16]")
		os.Exit(2)
	}
	conn, err := rawttrpc.Dial(*address)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	task := taskv2.NewTTRPCTaskClient(client)
	req := &taskv2.StateRequest{ID: *id}
	call := func() error {
		_, err := task.State(context.Background(), req)
		return err
	}
	for i := 0; i < *warmup; i++ {
		if err := call(); err != nil {
			fmt.Fprintf(os.Stderr, "warm-up State: %v\n", err)
			os.Exit(1)
		}
	}
	var out []result
	for _, s := range strings.Split(*callers, ",") {
		c, err := strconv.Atoi(s)
		if err != nil || c < 1 {
			fmt.Fprintf(os.Stderr, "bad -c %q\n", s)
			os.Exit(2)
		}
		r, err := measure(call, *calls, c)
		if err != nil {
			fmt.Fprintf(os.Stderr, "State with %d callers: %v\n", c, err)
			os.Exit(1)
		}
		out = append(out, r)
	}
	_ = json.NewEncoder(os.Stdout).Encode(out)
}

// measure shares n calls among c goroutines and times each call.
func measure(call func() error, n, c int) (result, error) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var once sync.Once
	var firstErr error
	var wg sync.WaitGroup
	t0 := time.Now()
	for g := 0; g < c; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				s := time.Now()
				if err := call(); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				lat[i] = time.Since(s)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	if firstErr != nil {
		return result{}, firstErr
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	us := func(q float64) float64 { return float64(lat[int(q*float64(n-1))].Nanoseconds()) / 1000 }
	return result{Callers: c, Calls: n, Seconds: elapsed.Seconds(), Rate: float64(n) / elapsed.Seconds(), P50: us(0.5), P99: us(0.99)}, nil
}
