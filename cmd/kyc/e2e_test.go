package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kycengine/kyc/adapters/pgtest"
)

// These tests start the real kyc binary.

var kycBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kyc-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	kycBinary = filepath.Join(dir, "kyc")
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	build := exec.Command(goTool, "build", "-o", kycBinary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build kyc:", err)
		os.Exit(1)
	}
	// pgtest.Main also stops the PostgreSQL server the PostgreSQL tests start.
	code := pgtest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

const e2eToken = "e2e-operator-token-0123456789"

type server struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	logs *syncBuffer
}

// syncBuffer collects a child process's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func writeKeys(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "keys.json")
	keys := `[{"token":"` + e2eToken + `","actor":"alice","roles":["operator"],"company":"acme","kind":"operator"},
	          {"token":"e2e-approver-token-0123456789","actor":"bob","roles":["operator"],"company":"acme","kind":"operator"}]`
	if err := os.WriteFile(path, []byte(keys), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startServer(t *testing.T, dataDir, keys string, extra ...string) *server {
	t.Helper()
	addr := freeAddr(t)
	s := &server{t: t, base: "http://" + addr, logs: &syncBuffer{}}
	s.cmd = exec.Command(kycBinary, append([]string{"serve", "--addr", addr, "--data", dataDir, "--keys", keys}, extra...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Kill()
			_ = s.cmd.Wait()
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("kyc serve did not become ready:\n%s", s.logs)
	return nil
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Wait()
}

func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

func (s *server) call(method, path, body string) (int, map[string]any, error) {
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out, nil
}

func runKyc(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(kycBinary, args...).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	default:
		t.Fatal(err)
		return "", -1
	}
}

const e2eRegistration = `{"name":{"first":"Ada","last":"Lovelace"},"nationality":"GB","birth_date":"1990-01-02","emails":["ada@example.com"]}`

func eventIDs(t *testing.T, s *server, customerID string) map[string]bool {
	t.Helper()
	code, body, err := s.call("GET", "/v1/customers/"+customerID+"/events", "")
	if err != nil || code != 200 {
		t.Fatalf("events of %s: %d %v %v", customerID, code, body, err)
	}
	ids := map[string]bool{}
	for _, e := range body["items"].([]any) {
		ids[e.(map[string]any)["id"].(string)] = true
	}
	return ids
}

// TestKillDuringWriteLoadLosesNothingAcknowledged kills kyc serve with SIGKILL
// while 16 clients write, restarts it, and checks every acknowledged event.
func TestKillDuringWriteLoadLosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	keys := writeKeys(t, dir)
	data := filepath.Join(dir, "data")
	s := startServer(t, data, keys)

	var (
		mu    sync.Mutex
		acked = map[string][]string{} // customer id -> acknowledged event ids
		wg    sync.WaitGroup
	)
	ctx, cancel := context.WithCancel(context.Background())
	record := func(customer string, body map[string]any) {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range body["events"].([]any) {
			acked[customer] = append(acked[customer], e.(map[string]any)["id"].(string))
		}
	}
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				code, body, err := s.call("POST", "/v1/customers", e2eRegistration)
				if err != nil || code != 201 {
					return
				}
				id := body["id"].(string)
				record(id, body)
				for _, step := range []struct{ path, body string }{
					{"/status", `{"status":"PENDING_REVIEW"}`},
					{"/notes", `{"text":"checked the proof of address"}`},
					{"/risk", `{"risk":"HIGH"}`},
					{"/status", `{"status":"REJECTED","reason":"proof of address is too old"}`},
				} {
					method := "POST"
					if step.path == "/risk" {
						method = "PUT"
					}
					code, body, err := s.call(method, "/v1/customers/"+id+step.path, step.body)
					if err != nil {
						return
					}
					if code != 200 {
						t.Errorf("%s: %d %v", step.path, code, body)
						return
					}
					record(id, body)
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	s.kill()
	cancel()
	wg.Wait()
	mu.Lock()
	total := 0
	for _, ids := range acked {
		total += len(ids)
	}
	mu.Unlock()
	if total < 100 {
		t.Fatalf("only %d events acknowledged before the kill; the load did not run", total)
	}

	s = startServer(t, data, keys)
	for customer, ids := range acked {
		stored := eventIDs(t, s, customer)
		for _, id := range ids {
			if !stored[id] {
				t.Fatalf("acknowledged event %s of customer %s is missing after the restart", id, customer)
			}
		}
	}
	s.stop()
	out, code := runKyc(t, "verify", "--data", data)
	if code != 0 || !strings.HasPrefix(out, "OK:") {
		t.Fatalf("kyc verify after the crash: exit %d\n%s", code, out)
	}
	t.Logf("%d acknowledged events in %d customers survived SIGKILL; %s", total, len(acked), strings.TrimSpace(out))
}

// TestVerifyReportsAlteredEvent changes one byte of a stored event in the
// SQLite file and expects kyc verify to name that event.
func TestVerifyReportsAlteredEvent(t *testing.T) {
	dir := t.TempDir()
	keys := writeKeys(t, dir)
	data := filepath.Join(dir, "data")
	s := startServer(t, data, keys)
	code, body, err := s.call("POST", "/v1/customers", e2eRegistration)
	if err != nil || code != 201 {
		t.Fatalf("register: %d %v %v", code, body, err)
	}
	id := body["id"].(string)
	code, body, err = s.call("POST", "/v1/customers/"+id+"/notes", `{"text":"marker-note-QZX: customer confirmed address by phone"}`)
	if err != nil || code != 200 {
		t.Fatalf("note: %d %v %v", code, body, err)
	}
	noteEvent := body["events"].([]any)[0].(map[string]any)["id"].(string)
	for i := 0; i < 5; i++ {
		if code, _, _ := s.call("PUT", "/v1/customers/"+id+"/risk", fmt.Sprintf(`{"risk":"%s"}`, []string{"HIGH", "NORMAL"}[i%2])); code != 200 {
			t.Fatalf("risk: %d", code)
		}
	}
	s.stop()

	if out, code := runKyc(t, "verify", "--data", data); code != 0 {
		t.Fatalf("verify before tampering: exit %d\n%s", code, out)
	}
	changed := 0
	for _, name := range []string{"kyc.db", "kyc.db-wal"} {
		path := filepath.Join(data, name)
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		// The whole marker: its last three bytes alone can turn up by
		// chance elsewhere in the files (seen once: the registration was
		// reported altered instead of the note).
		if n := bytes.Count(b, []byte("marker-note-QZX")); n > 0 {
			changed += n
			// One byte: Z becomes Y.
			if err := os.WriteFile(path, bytes.ReplaceAll(b, []byte("marker-note-QZX"), []byte("marker-note-QYX")), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if changed == 0 {
		t.Fatal("the note text was not found in the store files")
	}
	for _, args := range [][]string{{"verify", "--data", data}, {"verify", "--data", data, id}} {
		out, code := runKyc(t, args...)
		if code == 0 || !strings.Contains(out, noteEvent) || !strings.Contains(out, "revision 1") {
			t.Fatalf("kyc %v after tampering: exit %d, want non-zero naming event %s:\n%s", args, code, noteEvent, out)
		}
	}
}

func TestReplayAndLifecycleCommands(t *testing.T) {
	dir := t.TempDir()
	keys := writeKeys(t, dir)
	data := filepath.Join(dir, "data")
	s := startServer(t, data, keys)
	_, body, _ := s.call("POST", "/v1/customers", e2eRegistration)
	id := body["id"].(string)
	if code, body, _ := s.call("POST", "/v1/customers/"+id+"/status", `{"status":"PENDING_REVIEW"}`); code != 200 {
		t.Fatalf("status: %d %v", code, body)
	}
	// replay reads while the server is running.
	out, code := runKyc(t, "replay", id, "--data", data, "--revision", "0")
	if code != 0 || !strings.Contains(out, `"status": "CREATED"`) {
		t.Fatalf("replay --revision 0: exit %d\n%s", code, out)
	}
	out, code = runKyc(t, "replay", id, "--data", data)
	if code != 0 || !strings.Contains(out, `"status": "PENDING_REVIEW"`) {
		t.Fatalf("replay: exit %d\n%s", code, out)
	}
	out, code = runKyc(t, "replay", id, "--data", data, "--at", "2000-01-01T00:00:00Z")
	if code == 0 {
		t.Fatalf("replay before the customer existed should fail:\n%s", out)
	}
	s.stop()
	out, code = runKyc(t, "lifecycle", "show", "kyc-review")
	if code != 0 || !strings.Contains(out, "PENDING_APPROVAL --> APPROVED: approve [four_eyes]") {
		t.Fatalf("lifecycle show: exit %d\n%s", code, out)
	}
	out, code = runKyc(t, "lifecycle", "list")
	if code != 0 || !strings.Contains(out, "onboarding") || !strings.Contains(out, "banking") {
		t.Fatalf("lifecycle list: exit %d\n%s", code, out)
	}
}

// kyc serve exposes the admission's gauges beside the command counters:
// after a command has ended, none is in flight or waiting, and on an idle
// server no limit holds.
func TestServeExposesTheAdmission(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, filepath.Join(dir, "data"), writeKeys(t, dir))
	if code, body, _ := s.call("POST", "/v1/customers", e2eRegistration); code != 201 {
		t.Fatalf("register: %d %v", code, body)
	}
	resp, err := httpClient.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kyc_commands_in_flight 0\n", "kyc_commands_waiting 0\n", "kyc_commands_in_flight_limit +Inf\n",
		`kyc_commands_total{command="RegisterCustomer",outcome="ok"} 1`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestFirstStartWritesSuperuserToken(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	addr := freeAddr(t)
	logs := &syncBuffer{}
	cmd := exec.Command(kycBinary, "serve", "--addr", addr, "--data", data)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var token []byte
	for i := 0; i < 200 && len(token) == 0; i++ {
		time.Sleep(50 * time.Millisecond)
		token, _ = os.ReadFile(filepath.Join(data, "superuser.token"))
	}
	if len(token) == 0 {
		t.Fatalf("no token file written:\n%s", logs)
	}
	var resp *http.Response
	var err error
	for i := 0; i < 100; i++ {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/lifecycles", nil)
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
		if resp, err = httpClient.Do(req); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(logs.String(), "superuser.token") {
		t.Fatalf("status %d, logs:\n%s", resp.StatusCode, logs)
	}
}
