package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// build compiles nats-server (from the module in go.mod) and linkway into
// dir once per test run.
func build(t *testing.T, dir string) (natsBin, linkwayBin string) {
	t.Helper()
	natsBin, linkwayBin = filepath.Join(dir, "nats-server"), filepath.Join(dir, "linkway")
	for _, b := range [][2]string{{natsBin, "github.com/nats-io/nats-server/v2"}, {linkwayBin, "linkway/services/linkway"}} {
		cmd := exec.Command("go", "build", "-o", b[0], b[1])
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	return natsBin, linkwayBin
}

// freePort finds a free loopback port. Another process could take it
// before we do; on loopback in a test that has not been seen.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor polls f until it returns nil or within passes.
func waitFor(within time.Duration, every time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(every)
	}
}

// proc is one child process, restartable, its output appended to a file.
type proc struct {
	name string
	bin  string
	args []string
	env  []string
	log  string

	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when the current process has been waited for.
	exited chan struct{}
}

func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "---- start %s %s\n", p.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		f.Close()
		close(exited)
	}()
	p.cmd, p.exited = cmd, exited
	return nil
}

// signal sends sig to the running process and waits for it to exit.
func (p *proc) signal(sig syscall.Signal, wait time.Duration) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(wait):
		_ = cmd.Process.Kill()
		<-exited
	}
}

func (p *proc) kill() { p.signal(syscall.SIGKILL, 10*time.Second) }

func (p *proc) tail(n int) string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(string(bytes.TrimSpace(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// natsNode is one nats-server process of the cluster.
type natsNode struct {
	*proc
	port, clusterPort, httpPort int
}

func (n *natsNode) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// healthy is the server's own /healthz: JetStream enabled and its streams
// and consumers current.
func (n *natsNode) healthy() error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", n.httpPort))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s /healthz: %s", n.name, resp.Status)
	}
	// /healthz can be green before the meta leader is known: wait for it.
	jresp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/jsz", n.httpPort))
	if err != nil {
		return err
	}
	defer jresp.Body.Close()
	var jsz struct {
		Meta *struct {
			Leader string `json:"leader"`
		} `json:"meta_cluster"`
	}
	if err := json.NewDecoder(jresp.Body).Decode(&jsz); err != nil {
		return err
	}
	if jsz.Meta == nil || jsz.Meta.Leader == "" {
		return fmt.Errorf("%s: no meta leader yet", n.name)
	}
	return nil
}

// startCluster writes three node configs (JetStream fsyncing every write,
// routes to each other, loopback only) and starts the nodes.
func startCluster(t *testing.T, natsBin, dir string) []*natsNode {
	t.Helper()
	nodes := make([]*natsNode, 3)
	var routes []string
	for i := range nodes {
		nodes[i] = &natsNode{port: freePort(t), clusterPort: freePort(t), httpPort: freePort(t)}
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", nodes[i].clusterPort))
	}
	for i, n := range nodes {
		name := fmt.Sprintf("n%d", i+1)
		conf := filepath.Join(dir, name+".conf")
		cfg := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
http: 127.0.0.1:%d
jetstream {
  store_dir: %q
  sync_interval: always
  max_memory_store: 256MB
  max_file_store: 4GB
}
cluster {
  name: lwtest
  listen: 127.0.0.1:%d
  routes: [%s]
}
`, name, n.port, n.httpPort, filepath.Join(dir, name), n.clusterPort, strings.Join(routes, ", "))
		if err := os.WriteFile(conf, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		n.proc = &proc{name: name, bin: natsBin, args: []string{"-c", conf}, log: filepath.Join(dir, name+".log")}
		t.Cleanup(n.kill)
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		if err := waitFor(60*time.Second, 100*time.Millisecond, n.healthy); err != nil {
			t.Fatalf("%s not healthy: %v\n%s", n.name, err, n.tail(30))
		}
	}
	return nodes
}

// hubReplica is one `linkway hub` process against the cluster, restarted
// by its supervisor whenever it exits until the test stops it: what a
// Kubernetes Deployment does.
type hubReplica struct {
	*proc
	httpPort int
	stopping chan struct{}
	done     chan struct{}
	starts   atomic.Int64
}

// exits are the lines a replica's process ended with (`linkway: ...`),
// the reasons it stopped by itself.
func (h *hubReplica) exits() []string {
	b, _ := os.ReadFile(h.log)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "linkway: ") || strings.HasPrefix(l, "panic:") {
			out = append(out, l)
		}
	}
	return out
}

func (h *hubReplica) base() string { return fmt.Sprintf("http://127.0.0.1:%d", h.httpPort) }

func (h *hubReplica) ready() error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(h.base() + "/readyz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s /readyz: %s", h.name, resp.Status)
	}
	return nil
}

func (h *hubReplica) supervise() {
	defer close(h.done)
	for {
		if err := h.start(); err != nil {
			return
		}
		h.starts.Add(1)
		h.mu.Lock()
		exited := h.exited
		h.mu.Unlock()
		select {
		case <-h.stopping:
			return
		case <-exited:
		}
		select {
		case <-h.stopping:
			return
		case <-time.After(time.Second):
		}
	}
}

// stop ends supervision and the process: gracefully (SIGTERM) or not.
func (h *hubReplica) stop(sig syscall.Signal) {
	select {
	case <-h.stopping:
	default:
		close(h.stopping)
	}
	h.signal(sig, 20*time.Second)
	<-h.done
}

// Keys every process shares: the master key that wraps people's data keys
// and the pseudonym secret, so replicas read each other's writes.
var (
	testMasterKey    = base64.StdEncoding.EncodeToString([]byte("linkway-cluster-test-master-key!")) // 32 bytes
	testPseudonymKey = "linkway-cluster-test-pseudonym-key"
)

func hubEnv() []string {
	return []string{"LINKWAY_MASTER_KEY=" + testMasterKey, "LINKWAY_PSEUDONYM_KEY=" + testPseudonymKey, "LINKWAY_LOG_LEVEL=warn"}
}

// hubServices are the services each replica runs: all of them, unless
// LINKWAY_CLUSTER_SERVICES names a list. Every replica keeps the outcomes
// view in memory and publishes each outcome-feed line under one message
// id; a line the other replica is storing at that moment (10158) is
// published again until stored or found a duplicate.
func hubServices() string {
	if s := os.Getenv("LINKWAY_CLUSTER_SERVICES"); s != "" && s != "all" {
		return s
	}
	return "directory,referrals,linkwork,vcs,outcomes,admin"
}

func natsURLs(nodes []*natsNode) string {
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.url())
	}
	return strings.Join(urls, ",")
}

func startHub(t *testing.T, linkwayBin, dir, name string, nodes []*natsNode) *hubReplica {
	t.Helper()
	h := &hubReplica{httpPort: freePort(t), stopping: make(chan struct{}), done: make(chan struct{})}
	data := filepath.Join(dir, name)
	h.proc = &proc{name: name, bin: linkwayBin, env: hubEnv(), log: filepath.Join(dir, name+".log"),
		args: []string{"hub", "--nats", natsURLs(nodes), "--replicas", "3", "--replica-name", name, "--demo",
			"--rate-limit", "0", "--http", fmt.Sprintf("127.0.0.1:%d", h.httpPort), "--data", data, "--lease-ttl", "3s",
			"--services", hubServices()}}
	go h.supervise()
	t.Cleanup(func() { h.stop(syscall.SIGKILL) })
	return h
}

// rebuild runs `linkway rebuild all` against the cluster, into a fresh
// views folder.
func rebuild(ctx context.Context, linkwayBin, dir, views string, nodes []*natsNode) (string, error) {
	cmd := exec.CommandContext(ctx, linkwayBin, "rebuild", "all", "--nats", natsURLs(nodes), "--replicas", "3",
		"--replica-name", "rebuild", "--data", filepath.Join(dir, "rebuild"), "--views", views)
	cmd.Env = append(os.Environ(), hubEnv()...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
