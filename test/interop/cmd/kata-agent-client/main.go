// kata-agent-client: Kata Containers' own Go agent client
// (github.com/kata-containers/kata-containers/src/runtime, package
// virtcontainers/pkg/agent/protocols/client, with the generated types of
// .../protocols/grpc) against an agent at a hybrid vsock address
// (hvsock://<unix socket>:<port>, the "CONNECT <port>\n" / "OK <port>\n"
// handshake Kata's runtime uses for Cloud Hypervisor and Firecracker).
//
// It drives one sandbox's life the way Kata's runtime does (CreateSandbox,
// CreateContainer, StartContainer, ReadStdout, ExecProcess, WaitProcess,
// SignalProcess, RemoveContainer, DestroySandbox), asks a few calls that must
// fail, and surveys every AgentService method Kata's client has with an empty
// request, so the caller can tell served methods from Unimplemented ones.
// Prints one JSON document; the caller asserts on it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"reflect"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
	"time"

	kataclient "github.com/kata-containers/kata-containers/src/runtime/virtcontainers/pkg/agent/protocols/client"
	pb "github.com/kata-containers/kata-containers/src/runtime/virtcontainers/pkg/agent/protocols/grpc"

	"shimlab.local/interop/internal/outcome"
)

const kataModule = "github.com/kata-containers/kata-containers/src/runtime"

type step struct {
	Name string `json:"name"`
	outcome.Outcome
}

type report struct {
	// The Kata module this binary was built with, from its build info: the
	// test checks it against go.mod, so the version the README names is the one run.
	Kata     string                     `json:"kata"`
	Complete bool                       `json:"complete"`
	Error    string                     `json:"error,omitempty"`
	Steps    []step                     `json:"steps"`
	Survey   map[string]outcome.Outcome `json:"survey"`
}

var (
	address   = flag.String("address", "", "the agent's address, hvsock://<unix socket path>:<port>")
	rootfs    = flag.String("rootfs", "", "an absolute rootfs directory with /bin/sh (busybox), used read-only")
	sandboxID = flag.String("sandbox", "kata-client", "the sandbox id (and the id of its first container, as Kata's runtime names it)")
)

func main() {
	flag.Parse()
	r := report{Kata: kataVersion(), Survey: map[string]outcome.Outcome{}}
	defer func() {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
	}()
	if *address == "" || *rootfs == "" {
		r.Error = "-address and -rootfs are required"
		return
	}
	// The timeout is the dial's, in seconds, as Kata's runtime passes its dial_timeout.
	c, err := kataclient.NewAgentClient(context.Background(), *address, 10)
	if err != nil {
		r.Error = fmt.Sprintf("NewAgentClient(%s): %v", *address, err)
		return
	}
	defer c.Close()
	if err := lifecycle(c, &r); err != nil {
		r.Error = err.Error()
		return
	}
	r.Complete = true
}

func kataVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == kataModule {
				return d.Version
			}
		}
	}
	return "unknown"
}

// call runs one request with its own deadline and records how it ended. A
// step whose error the lifecycle cannot go on without is returned as well.
func call(r *report, name string, timeout time.Duration, f func(ctx context.Context) (any, error)) (outcome.Outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var err error
	o := outcome.Time(func() (any, error) {
		v, e := f(ctx)
		err = e
		return v, e
	})
	r.Steps = append(r.Steps, step{Name: name, Outcome: o})
	return o, err
}

func must(r *report, name string, timeout time.Duration, f func(ctx context.Context) (any, error)) error {
	if _, err := call(r, name, timeout, f); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

const pathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func shProcess(script string) *pb.Process {
	return &pb.Process{
		Args: []string{"/bin/sh", "-c", script},
		Env:  []string{pathEnv},
		Cwd:  "/",
		User: &pb.User{UID: 0, GID: 0},
	}
}

// spec is what Kata's runtime sends for a container: an OCI spec in Kata's
// protobuf form, with the rootfs already where the agent can see it (here a
// host directory, since the mock agent runs beside us rather than in a VM).
func spec(hostname, script string) *pb.Spec {
	return &pb.Spec{
		Version:  "1.0.2",
		Process:  shProcess(script),
		Root:     &pb.Root{Path: *rootfs, Readonly: true},
		Hostname: hostname,
		Mounts: []*pb.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &pb.Linux{
			Namespaces: []*pb.LinuxNamespace{{Type: "pid"}, {Type: "ipc"}, {Type: "uts"}, {Type: "mount"}, {Type: "network"}},
		},
	}
}

// readAll reads a process's stdout until the agent says end of stream (an
// empty answer, as kata-agent gives once the process is gone and drained) or
// until want has been seen, when want is not empty (a process still running
// has no end of stream yet).
func readAll(ctx context.Context, c *kataclient.AgentClient, container, exec, want string) (string, error) {
	var out strings.Builder
	for i := 0; i < 64; i++ {
		resp, err := c.AgentServiceClient.ReadStdout(ctx, &pb.ReadStreamRequest{ContainerId: container, ExecId: exec, Len: 4096})
		if err != nil {
			return out.String(), err
		}
		if len(resp.Data) == 0 {
			return out.String(), nil
		}
		out.Write(resp.Data)
		if want != "" && strings.Contains(out.String(), want) {
			return out.String(), nil
		}
	}
	return out.String(), fmt.Errorf("no end of stream after 64 reads")
}

func lifecycle(c *kataclient.AgentClient, r *report) error {
	const short = 10 * time.Second
	a := c.AgentServiceClient
	id := *sandboxID

	if err := must(r, "health.check", short, func(ctx context.Context) (any, error) {
		resp, err := c.HealthClient.Check(ctx, &pb.CheckRequest{})
		if err != nil {
			return nil, err
		}
		return map[string]any{"status": resp.Status.String()}, nil
	}); err != nil {
		return err
	}
	if err := must(r, "health.version", short, func(ctx context.Context) (any, error) {
		resp, err := c.HealthClient.Version(ctx, &pb.CheckRequest{})
		if err != nil {
			return nil, err
		}
		return map[string]any{"agent_version": resp.AgentVersion, "grpc_version": resp.GrpcVersion}, nil
	}); err != nil {
		return err
	}
	// Before the sandbox exists, a container has nowhere to go.
	call(r, "create-container.before-sandbox", short, func(ctx context.Context) (any, error) {
		return nil, ignore(a.CreateContainer(ctx, &pb.CreateContainerRequest{ContainerId: id, ExecId: id, OCI: spec(id, "true")}))
	})
	if err := must(r, "create-sandbox", short, func(ctx context.Context) (any, error) {
		return nil, ignore(a.CreateSandbox(ctx, &pb.CreateSandboxRequest{Hostname: id, SandboxId: id}))
	}); err != nil {
		return err
	}
	call(r, "create-sandbox.again", short, func(ctx context.Context) (any, error) {
		return nil, ignore(a.CreateSandbox(ctx, &pb.CreateSandboxRequest{Hostname: id, SandboxId: id}))
	})

	// The init prints a line and sleeps: its stdout can be read while it runs.
	if err := must(r, "create-container", short, func(ctx context.Context) (any, error) {
		return nil, ignore(a.CreateContainer(ctx, &pb.CreateContainerRequest{ContainerId: id, ExecId: id, OCI: spec(id, "echo hello from the kata client; echo host=$(hostname); exec sleep 300")}))
	}); err != nil {
		return err
	}
	if err := must(r, "start-container", short, func(ctx context.Context) (any, error) {
		return nil, ignore(a.StartContainer(ctx, &pb.StartContainerRequest{ContainerId: id}))
	}); err != nil {
		return err
	}
	call(r, "start-container.again", short, func(ctx context.Context) (any, error) {
		return nil, ignore(a.StartContainer(ctx, &pb.StartContainerRequest{ContainerId: id}))
	})
	call(r, "start-container.unknown", short, func(ctx context.Context) (any, error) {
		return nil, ignore(a.StartContainer(ctx, &pb.StartContainerRequest{ContainerId: "no-such-container"}))
	})
	if err := must(r, "read-stdout.init", short, func(ctx context.Context) (any, error) {
		out, err := readAll(ctx, c, id, "", "host=")
		if err == nil && !strings.Contains(out, "\n") {
			// "host=" came, its line not yet: one more read finishes it.
			more, e := readAll(ctx, c, id, "", "\n")
			out, err = out+more, e
		}
		return map[string]any{"data": out}, err
	}); err != nil {
		return err
	}

	// An exec that prints and exits 3: its whole stdout, then its status.
	if err := must(r, "exec-process", short, func(ctx context.Context) (any, error) {
		return nil, ignore(a.ExecProcess(ctx, &pb.ExecProcessRequest{ContainerId: id, ExecId: "exec-out", Process: shProcess("echo out-$((6*7)); echo err >&2; exit 3")}))
	}); err != nil {
		return err
	}
	if err := must(r, "read-stdout.exec", short, func(ctx context.Context) (any, error) {
		out, err := readAll(ctx, c, id, "exec-out", "")
		return map[string]any{"data": out}, err
	}); err != nil {
		return err
	}
	if err := must(r, "wait-process.exec", short, func(ctx context.Context) (any, error) {
		resp, err := a.WaitProcess(ctx, &pb.WaitProcessRequest{ContainerId: id, ExecId: "exec-out"})
		if err != nil {
			return nil, err
		}
		return map[string]any{"status": resp.Status}, nil
	}); err != nil {
		return err
	}
	// Waited for, the exec is gone: kata-agent's answer for an exec id it does not know.
	call(r, "wait-process.exec-again", short, func(ctx context.Context) (any, error) {
		return nil, ignore(a.WaitProcess(ctx, &pb.WaitProcessRequest{ContainerId: id, ExecId: "exec-out"}))
	})
	call(r, "exec-process.unknown-container", short, func(ctx context.Context) (any, error) {
		return nil, ignore(a.ExecProcess(ctx, &pb.ExecProcessRequest{ContainerId: "no-such-container", ExecId: "x", Process: shProcess("true")}))
	})

	// An exec that would sleep, ended by SIGTERM through SignalProcess.
	if err := must(r, "exec-process.sleeper", short, func(ctx context.Context) (any, error) {
		return nil, ignore(a.ExecProcess(ctx, &pb.ExecProcessRequest{ContainerId: id, ExecId: "exec-sleep", Process: shProcess("echo ready; exec sleep 300")}))
	}); err != nil {
		return err
	}
	// Its "ready" says sleep is about to run, so the signal finds the process it means.
	if err := must(r, "read-stdout.sleeper", short, func(ctx context.Context) (any, error) {
		out, err := readAll(ctx, c, id, "exec-sleep", "ready\n")
		return map[string]any{"data": out}, err
	}); err != nil {
		return err
	}
	if err := must(r, "signal-process.sigterm-exec", short, func(ctx context.Context) (any, error) {
		return nil, ignore(a.SignalProcess(ctx, &pb.SignalProcessRequest{ContainerId: id, ExecId: "exec-sleep", Signal: uint32(syscall.SIGTERM)}))
	}); err != nil {
		return err
	}
	if err := must(r, "wait-process.sleeper", short, func(ctx context.Context) (any, error) {
		resp, err := a.WaitProcess(ctx, &pb.WaitProcessRequest{ContainerId: id, ExecId: "exec-sleep"})
		if err != nil {
			return nil, err
		}
		return map[string]any{"status": resp.Status}, nil
	}); err != nil {
		return err
	}

	// The init, killed as Kata's runtime stops a container: SIGKILL with exec_id "".
	if err := must(r, "signal-process.sigkill-init", short, func(ctx context.Context) (any, error) {
		return nil, ignore(a.SignalProcess(ctx, &pb.SignalProcessRequest{ContainerId: id, Signal: uint32(syscall.SIGKILL)}))
	}); err != nil {
		return err
	}
	if err := must(r, "wait-process.init", short, func(ctx context.Context) (any, error) {
		resp, err := a.WaitProcess(ctx, &pb.WaitProcessRequest{ContainerId: id})
		if err != nil {
			return nil, err
		}
		return map[string]any{"status": resp.Status}, nil
	}); err != nil {
		return err
	}

	// Every method of Kata's client, with an empty request: what is served and what is not.
	survey(a, r)

	if err := must(r, "remove-container", short, func(ctx context.Context) (any, error) {
		return nil, ignore(a.RemoveContainer(ctx, &pb.RemoveContainerRequest{ContainerId: id, Timeout: 5}))
	}); err != nil {
		return err
	}
	call(r, "remove-container.again", short, func(ctx context.Context) (any, error) {
		return nil, ignore(a.RemoveContainer(ctx, &pb.RemoveContainerRequest{ContainerId: id, Timeout: 5}))
	})
	return must(r, "destroy-sandbox", short, func(ctx context.Context) (any, error) {
		return nil, ignore(a.DestroySandbox(ctx, &pb.DestroySandboxRequest{}))
	})
}

func ignore(_ any, err error) error { return err }

// surveyTimeout bounds the calls that wait for something by design
// (GetOOMEvent waits for an OOM): such a call ends DeadlineExceeded, which
// still says the method is served.
const surveyTimeout = 500 * time.Millisecond

// survey calls every method of Kata's AgentServiceService but DestroySandbox
// (which ends the sandbox, and is the lifecycle's last step) with an empty
// request of its own type. An empty request changes nothing on a served
// method (no container id names nothing; a second CreateSandbox is refused),
// so what comes back tells served from Unimplemented.
func survey(a pb.AgentServiceService, r *report) {
	t := reflect.TypeOf((*pb.AgentServiceService)(nil)).Elem()
	v := reflect.ValueOf(a)
	names := make([]string, 0, t.NumMethod())
	for i := 0; i < t.NumMethod(); i++ {
		names = append(names, t.Method(i).Name)
	}
	sort.Strings(names)
	for _, name := range names {
		if name == "DestroySandbox" {
			continue
		}
		m := v.MethodByName(name)
		req := reflect.New(m.Type().In(1).Elem())
		ctx, cancel := context.WithTimeout(context.Background(), surveyTimeout)
		o := outcome.Time(func() (any, error) {
			out := m.Call([]reflect.Value{reflect.ValueOf(ctx), req})
			err, _ := out[1].Interface().(error)
			return nil, err
		})
		cancel()
		r.Survey[name] = o
	}
}
