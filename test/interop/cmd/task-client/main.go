// task-client: Go's ttrpc client, the one containerd uses, against a shim's
// containerd.task.v2.Task service. It expects one running task (a long sleep)
// and ends by killing it. It prints one JSON document of what every call
// answered, so that a test can hold shimlab's answers against runc's shim's
// answers to the very same calls.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	taskv2 "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/ttrpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"shimlab.local/interop/internal/outcome"
	"shimlab.local/interop/internal/rawttrpc"
)

const (
	taskService = "containerd.task.v2.Task"
	// No shim has these; the calls must fail by their codes, not by luck of naming.
	unknownID   = "no-such-container"
	unknownExec = "no-such-exec"
	// Past this, the program gives up and prints what it has: a shim that
	// never answers must fail the test with the observations so far, not hang it.
	watchdog = 90 * time.Second
)

var (
	address   = flag.String("address", "", "the shim's address, as `start` printed it")
	id        = flag.String("id", "", "a running task's id; it is killed at the end")
	namespace = flag.String("namespace", "default", "sent as containerd-namespace-ttrpc metadata")
)

type report struct {
	TTRPC        string                     `json:"ttrpc"`
	Complete     bool                       `json:"complete"`
	Error        string                     `json:"error,omitempty"`
	Observations map[string]outcome.Outcome `json:"observations"`
}

type observer struct {
	mu  sync.Mutex
	rep report
}

func (o *observer) record(key string, f func() (any, error)) outcome.Outcome {
	r := outcome.Time(f)
	o.set(key, r)
	return r
}

func (o *observer) set(key string, r outcome.Outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rep.Observations[key] = r
}

func (o *observer) print(complete bool, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rep.Complete = complete
	if err != nil {
		o.rep.Error = err.Error()
	}
	_ = json.NewEncoder(os.Stdout).Encode(o.rep)
}

type serverTimeoutKey struct{}

// withServerTimeout makes the request carry timeout_nano d while the client's
// own context allows longer, so that what ends the call is the server's
// handling of the deadline rather than the client's.
func withServerTimeout(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, serverTimeoutKey{}, d)
}

func serverTimeout(ctx context.Context, req *ttrpc.Request, resp *ttrpc.Response, _ *ttrpc.UnaryClientInfo, invoke ttrpc.Invoker) error {
	if d, ok := ctx.Value(serverTimeoutKey{}).(time.Duration); ok {
		req.TimeoutNano = d.Nanoseconds()
	}
	return invoke(ctx, req, resp)
}

func ttrpcVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "github.com/containerd/ttrpc" {
				return d.Version
			}
		}
	}
	return "unknown"
}

func main() {
	flag.Parse()
	if *address == "" || *id == "" {
		fmt.Fprintln(os.Stderr, "usage: task-client -address <shim address> -id <running task id> [-namespace ns]")
		os.Exit(2)
	}
	o := &observer{rep: report{TTRPC: ttrpcVersion(), Observations: map[string]outcome.Outcome{}}}
	time.AfterFunc(watchdog, func() {
		o.print(false, fmt.Errorf("gave up after %v", watchdog))
		os.Exit(3)
	})
	if err := run(o); err != nil {
		o.print(false, err)
		os.Exit(1)
	}
	o.print(true, nil)
}

func run(o *observer) error {
	conn, err := rawttrpc.Dial(*address)
	if err != nil {
		return err
	}
	client := ttrpc.NewClient(conn, ttrpc.WithUnaryClientInterceptor(serverTimeout))
	defer client.Close()
	task := taskv2.NewTTRPCTaskClient(client)
	bg := context.Background()

	st, err := task.State(bg, &taskv2.StateRequest{ID: *id})
	if err != nil {
		return fmt.Errorf("State of the running task: %w", err)
	}
	initPid := st.Pid
	o.set("state", outcome.Outcome{Code: "OK", Source: "server", Value: map[string]any{"status": st.Status.String(), "has_pid": st.Pid > 0, "id": st.ID == *id}})

	o.record("state.metadata", func() (any, error) {
		ctx := ttrpc.WithMetadata(bg, ttrpc.MD{
			"containerd-namespace-ttrpc": {*namespace},
			"traceparent":                {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
			"x-repeated":                 {"a", "b"},
		})
		r, err := task.State(ctx, &taskv2.StateRequest{ID: *id})
		return statusOf(r), err
	})
	o.record("state.deadline", func() (any, error) {
		ctx, cancel := context.WithTimeout(bg, 10*time.Second)
		defer cancel()
		r, err := task.State(ctx, &taskv2.StateRequest{ID: *id})
		return statusOf(r), err
	})
	o.record("pids", func() (any, error) {
		r, err := task.Pids(bg, &taskv2.PidsRequest{ID: *id})
		if err != nil {
			return nil, err
		}
		listed := false
		for _, p := range r.Processes {
			listed = listed || p.Pid == initPid
		}
		return map[string]any{"count": len(r.Processes), "lists_state_pid": listed}, nil
	})
	o.record("stats", func() (any, error) {
		r, err := task.Stats(bg, &taskv2.StatsRequest{ID: *id})
		if err != nil {
			return nil, err
		}
		v := map[string]any{"type_url": r.Stats.GetTypeUrl()}
		if n, ok := pidsCurrent(r.Stats.GetValue()); ok {
			v["pids_current_positive"] = n > 0
		}
		return v, nil
	})

	// Errors, each with the code containerd's errdefs.FromGRPC reads.
	errorCalls := map[string]func() error{
		"state.unknown-id":    func() error { _, err := task.State(bg, &taskv2.StateRequest{ID: unknownID}); return err },
		"state.unknown-exec":  func() error { _, err := task.State(bg, &taskv2.StateRequest{ID: *id, ExecID: unknownExec}); return err },
		"pids.unknown-id":     func() error { _, err := task.Pids(bg, &taskv2.PidsRequest{ID: unknownID}); return err },
		"stats.unknown-id":    func() error { _, err := task.Stats(bg, &taskv2.StatsRequest{ID: unknownID}); return err },
		"kill.unknown-id":     func() error { _, err := task.Kill(bg, &taskv2.KillRequest{ID: unknownID, Signal: 9}); return err },
		"kill.unknown-exec":   func() error { _, err := task.Kill(bg, &taskv2.KillRequest{ID: *id, ExecID: unknownExec, Signal: 9}); return err },
		"wait.unknown-exec":   func() error { _, err := task.Wait(bg, &taskv2.WaitRequest{ID: *id, ExecID: unknownExec}); return err },
		"delete.unknown-exec": func() error { _, err := task.Delete(bg, &taskv2.DeleteRequest{ID: *id, ExecID: unknownExec}); return err },
		"unknown-method": func() error {
			return client.Call(bg, taskService, "NoSuchMethod", &taskv2.StateRequest{ID: *id}, &taskv2.StateResponse{})
		},
		"unknown-service": func() error {
			return client.Call(bg, "containerd.task.v2.NoSuchService", "State", &taskv2.StateRequest{ID: *id}, &taskv2.StateResponse{})
		},
	}
	for key, call := range errorCalls {
		o.record(key, func() (any, error) { return nil, call() })
	}

	o.record("state.concurrent", func() (any, error) { return concurrentStates(task, 64), nil })

	// A blocking call with a short deadline ends with DeadlineExceeded, and the connection lives on.
	o.record("wait.deadline", func() (any, error) {
		ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
		defer cancel()
		_, err := task.Wait(ctx, &taskv2.WaitRequest{ID: *id})
		return nil, err
	})
	o.record("state.after-deadline", func() (any, error) {
		r, err := task.State(bg, &taskv2.StateRequest{ID: *id})
		return statusOf(r), err
	})
	// The same, but only the server knows the short deadline (timeout_nano):
	// does the server apply it, or does the call run on until the client's own?
	o.record("wait.server-deadline", func() (any, error) {
		ctx, cancel := context.WithTimeout(withServerTimeout(bg, 300*time.Millisecond), 1500*time.Millisecond)
		defer cancel()
		_, err := task.Wait(ctx, &taskv2.WaitRequest{ID: *id})
		return nil, err
	})
	// A far deadline (30 days of timeout_nano, an int64 like any other) is no
	// deadline for now: the call runs until the client's own 500 ms.
	o.record("wait.far-deadline", func() (any, error) {
		ctx, cancel := context.WithTimeout(withServerTimeout(bg, 30*24*time.Hour), 500*time.Millisecond)
		defer cancel()
		_, err := task.Wait(ctx, &taskv2.WaitRequest{ID: *id})
		return nil, err
	})
	o.record("state.after-server-deadline", func() (any, error) {
		r, err := task.State(bg, &taskv2.StateRequest{ID: *id})
		return statusOf(r), err
	})

	if err := rawChecks(o, task); err != nil {
		return err
	}

	o.record("kill", func() (any, error) {
		_, err := task.Kill(bg, &taskv2.KillRequest{ID: *id, Signal: uint32(syscall.SIGKILL)})
		return nil, err
	})
	o.record("wait", func() (any, error) {
		ctx, cancel := context.WithTimeout(bg, 20*time.Second)
		defer cancel()
		r, err := task.Wait(ctx, &taskv2.WaitRequest{ID: *id})
		if err != nil {
			return nil, err
		}
		return map[string]any{"exit_status": r.ExitStatus, "has_exited_at": r.ExitedAt.AsTime().Year() > 2000}, nil
	})
	o.record("state.stopped", func() (any, error) {
		r, err := task.State(bg, &taskv2.StateRequest{ID: *id})
		if err != nil {
			return nil, err
		}
		return map[string]any{"status": r.Status.String(), "exit_status": r.ExitStatus}, nil
	})
	o.record("kill.finished", func() (any, error) {
		_, err := task.Kill(bg, &taskv2.KillRequest{ID: *id, Signal: uint32(syscall.SIGKILL)})
		return nil, err
	})
	return nil
}

func statusOf(r *taskv2.StateResponse) any {
	if r == nil {
		return nil
	}
	return map[string]any{"status": r.Status.String()}
}

// concurrentStates runs n State calls at once on the one connection.
func concurrentStates(task taskv2.TTRPCTaskService, n int) any {
	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[string]int{}
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := outcome.Time(func() (any, error) { return task.State(context.Background(), &taskv2.StateRequest{ID: *id}) })
			mu.Lock()
			codes[r.Code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return map[string]any{"calls": n, "codes": codes}
}

// pidsCurrent reads Metrics.pids.current (fields 2 and 1 of io.containerd.cgroups.v1.Metrics)
// without pulling in the cgroups module for one number.
func pidsCurrent(metrics []byte) (uint64, bool) {
	pids, ok := field(metrics, 2, protowire.BytesType)
	if !ok {
		return 0, false
	}
	cur, ok := field(pids, 1, protowire.VarintType)
	if !ok {
		return 0, true // current = 0 is not written
	}
	v, n := protowire.ConsumeVarint(cur)
	return v, n > 0
}

func field(b []byte, num protowire.Number, want protowire.Type) ([]byte, bool) {
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return nil, false
		}
		b = b[l:]
		vl := protowire.ConsumeFieldValue(n, typ, b)
		if vl < 0 {
			return nil, false
		}
		if n == num && typ == want {
			if typ == protowire.BytesType {
				v, _ := protowire.ConsumeBytes(b)
				return v, true
			}
			return b[:vl], true
		}
		b = b[vl:]
	}
	return nil, false
}

// rawChecks sends, on a connection of its own, what Go's client will not:
// an oversized request, an even stream id, a payload that does not decode, a
// frame of an unknown type. Each answer is read off the wire by stream id.
func rawChecks(o *observer, task taskv2.TTRPCTaskService) error {
	c, err := rawttrpc.Dial(*address)
	if err != nil {
		return err
	}
	defer c.Close()
	raw := rawttrpc.Conn{Conn: c}
	state := func(payload []byte) *ttrpc.Request {
		return &ttrpc.Request{Service: taskService, Method: "State", Payload: payload}
	}
	good, _ := proto.Marshal(&taskv2.StateRequest{ID: *id})

	o.record("raw.oversize", func() (any, error) {
		// The whole body follows the header, so the stream stays in frame for what comes next.
		body := make([]byte, rawttrpc.MaxLength+1)
		if err := raw.WriteFrame(1, rawttrpc.TypeRequest, uint32(len(body)), body); err != nil {
			return nil, err
		}
		return answer(raw)
	})
	o.record("raw.after-oversize", func() (any, error) {
		if err := raw.Request(3, state(good)); err != nil {
			return nil, err
		}
		return answer(raw)
	})
	o.record("raw.even-stream", func() (any, error) {
		if err := raw.Request(4, state(good)); err != nil {
			return nil, err
		}
		return answer(raw)
	})
	o.record("raw.bad-payload", func() (any, error) {
		// Field 1 (id) announces 100 bytes and has 1.
		if err := raw.Request(5, state([]byte{0x0a, 100, 'x'})); err != nil {
			return nil, err
		}
		return answer(raw)
	})
	o.record("raw.unknown-type", func() (any, error) {
		// Skipped by the server: the next answer on the wire is stream 9's.
		if err := raw.Unknown(7, []byte("not a request")); err != nil {
			return nil, err
		}
		if err := raw.Request(9, state(good)); err != nil {
			return nil, err
		}
		return answer(raw)
	})
	// The shim still serves its other connection after all that.
	o.record("state.after-raw", func() (any, error) {
		r, err := task.State(context.Background(), &taskv2.StateRequest{ID: *id})
		return statusOf(r), err
	})
	return nil
}

// answer reads one response frame: its stream id, and its status as the error.
func answer(raw rawttrpc.Conn) (any, error) {
	sid, res, err := raw.Response()
	if err != nil {
		return nil, err
	}
	v := map[string]any{"stream": sid}
	if res.Status != nil && res.Status.Code != 0 {
		return v, status.ErrorProto(res.Status)
	}
	var st taskv2.StateResponse
	if err := proto.Unmarshal(res.Payload, &st); err == nil {
		v["status"] = st.Status.String()
	}
	return v, nil
}
