#!/usr/bin/python3
"""test_repl.py - the sgdsa REPL driven through a pseudo-terminal and a pipe.

Through a pty (readline active): TAB completion of `sgdsa.ze` -> `sgdsa.zeros`,
of a method after `:` on a string, on a table whose metatable's __index is a
table, and on a tensor, of the lazily loaded `sgdsa.optim.` pieces and
`sgdsa.models.` names; help() and help(x); an optimizer printed as a summary
and the size error of `sgdsa.randn(3):t()`; expression values printed without `=`; a multi-line
`for` loop with the continuation prompt; an error followed by a valid
expression; Ctrl-C during `while true do end` returning to the prompt; Ctrl-C
at the prompt discarding the line; history written to $SGDSA_HISTORY.
Through a pipe: no prompts, same evaluation, exit status 1 after an error.
Env: SGDSA_BIN, SGDSA_TEST_TMP. Exit 0 pass, 1 fail.
"""
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

BIN = os.environ.get("SGDSA_BIN")
# Seconds to wait for the REPL to answer; a sanitizer build runs several times slower.
EXPECT_TIMEOUT = 30.0 if os.environ.get("SGDSA_SANITIZED") == "1" else 10.0
TMP = os.environ.get("SGDSA_TEST_TMP", "/tmp")
failures = []


class Repl:
    def __init__(self, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(BIN, [BIN], env)
        self.buf = b""

    def send(self, data):
        os.write(self.fd, data.encode())

    def expect(self, pattern, timeout=None):
        """Read until the regex matches the unread output; consume up to the match."""
        rx = re.compile(pattern.encode(), re.S)
        deadline = time.time() + (timeout if timeout is not None else EXPECT_TIMEOUT)
        while True:
            m = rx.search(self.buf)
            if m:
                seen = self.buf[: m.end()]
                self.buf = self.buf[m.end():]
                return seen.decode(errors="replace")
            left = deadline - time.time()
            if left <= 0:
                raise TimeoutError("no /%s/ in output: %r" % (pattern, self.buf[-800:]))
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise EOFError("REPL exited; output: %r" % self.buf[-800:])
                self.buf += chunk

    def close(self):
        self.send("\x04")  # Ctrl-D at an empty prompt exits
        deadline = time.time() + 10
        while time.time() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            try:
                r, _, _ = select.select([self.fd], [], [], 0.1)
                if r:
                    os.read(self.fd, 4096)
            except OSError:
                pass
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        return None


def check(name, fn):
    try:
        fn()
        print("ok   %s" % name)
    except Exception as e:  # a failed expectation, a timeout or an early exit
        failures.append(name)
        print("FAIL %s: %s" % (name, e))


PROMPT = r"> $"


def pty_tests():
    hist = os.path.join(TMP, "repl_history_%d" % os.getpid())
    if os.path.exists(hist):
        os.unlink(hist)
    env = dict(os.environ, TERM="dumb", SGDSA_HISTORY=hist, COLUMNS="200", LINES="50")
    r = Repl(env)
    r.expect(r"sgdsa \d+\.\d+\.\d+.*\n> ")

    def complete_global_field():
        r.send("sgdsa.ze\t")
        r.expect(r"sgdsa\.zeros")
        r.send("(2, 3):numel()\n")
        r.expect(r"\n6\r?\n> ")

    def complete_string_method():
        r.send('s = "abc"\n')
        r.expect(PROMPT)
        r.send("s:upp\t")
        r.expect(r"s:upper")
        r.send("()\n")
        r.expect(r"\nABC\r?\n> ")

    def complete_metatable_method():
        r.send("obj = setmetatable({}, {__index = {frobnicate = function() return 42 end}})\n")
        r.expect(PROMPT)
        r.send("obj:frob\t")
        r.expect(r"obj:frobnicate")
        r.send("()\n")
        r.expect(r"\n42\r?\n> ")

    def complete_tensor_method():
        r.send("t = sgdsa.ones(4)\n")
        r.expect(PROMPT)
        r.send("t:num\t")
        r.expect(r"t:numel")
        r.send("()\n")
        r.expect(r"\n4\r?\n> ")

    def complete_lazy_optim():
        # sgdsa.optim's pieces load on first use: completion lists them unloaded
        r.send("sgdsa.optim.metro\t")
        r.expect(r"sgdsa\.optim\.metropolis")
        r.send("{T0 = 2}:temperature()\n")
        r.expect(r"\n2\r?\n> ")

    def complete_lazy_models():
        r.send("sgdsa.models.len\t")
        r.expect(r"sgdsa\.models\.lenet")
        r.send("{classes = 10}:num_params()\n")
        r.expect(r"\n62158\r?\n> ")
        r.send("sgdsa.models.\t\t")
        r.expect(r"resnet18.*resnet34.*vgg16")
        r.send("\x03")
        r.expect(PROMPT)

    def help_index_and_doc():
        r.send("help()\n")
        r.expect(r"help\(x\): the documentation of x")
        r.expect(r"sgdsa\.models\s+lenet, mlp")
        r.expect(PROMPT)
        r.send("help\n")
        r.expect(r"sgdsa\.optim\s+optimizers sgdsa, sgd, ssa, optimizer")
        r.expect(PROMPT)
        r.send("help(sgdsa.optim.sgdsa)\n")
        r.expect(r"function M\.sgdsa\(o\).*The paper's SGD-SA \(Algorithm 2\)")
        r.expect(PROMPT)
        r.send('help "sgdsa.optim.metropolis"\n')
        r.expect(r"the simulated-annealing acceptance test")
        r.expect(PROMPT)

    def summaries_print():
        r.send("sgdsa.optim.sgdsa{H = {0.5, 0.1}}\n")
        r.expect(r"sgdsa\.optim\.sgdsa\{H=\{0\.5, 0\.1\}\}\r?\n\s+neighborhood\s+lr_set")
        r.expect(PROMPT)
        r.send("sgdsa.randn(3):t()\n")
        r.expect(r"t\(\): transposes a matrix \(2-d tensor\); this tensor is 1-d, of size 3")
        r.expect(PROMPT)
        r.send("1 + 2\n")
        r.expect(r"\n3\r?\n> ")

    def expression_and_table():
        r.send("1 + 1\n")
        r.expect(r"\n2\r?\n> ")
        r.send("{1, 2, a = 3}\n")
        r.expect(r"\n\{1, 2, a = 3\}\r?\n> ")

    def multiline_for():
        r.send("acc = {}\n")
        r.expect(PROMPT)
        r.send("for i = 1, 3 do\n")
        r.expect(r">> $")
        r.send("  acc[#acc + 1] = i * 10\n")
        r.expect(r">> $")
        r.send("end\n")
        r.expect(PROMPT)
        r.send("table.concat(acc, ',')\n")
        r.expect(r"\n10,20,30\r?\n> ")

    def error_recovery():
        r.send('error("oops")\n')
        r.expect(r"stdin:1: oops")
        r.expect(PROMPT)
        r.send("40 + 2\n")
        r.expect(r"\n42\r?\n> ")
        r.send("nosuchfunction()\n")
        r.expect(r"attempt to call a nil value \(global 'nosuchfunction'\)")
        r.expect(PROMPT)
        r.send("x = = 1\n")
        r.expect(r"unexpected symbol")
        r.expect(PROMPT)
        r.send("'still ' .. 'alive'\n")
        r.expect(r"\nstill alive\r?\n> ")

    def ctrl_c_running():
        r.send("while true do end\n")
        time.sleep(0.5)
        r.send("\x03")
        r.expect(r"interrupted")
        r.expect(PROMPT)
        r.send("6 * 7\n")
        r.expect(r"\n42\r?\n> ")

    def ctrl_c_prompt():
        r.send("garbage garbage")
        r.expect(r"garbage garbage")
        r.send("\x03")
        r.expect(PROMPT)
        r.send("3 * 3\n")
        r.expect(r"\n9\r?\n> ")

    for name, fn in [("complete sgdsa.ze<TAB>", complete_global_field),
                     ("complete string method after :", complete_string_method),
                     ("complete __index-table method", complete_metatable_method),
                     ("complete tensor method", complete_tensor_method),
                     ("complete sgdsa.optim.<lazy piece>", complete_lazy_optim),
                     ("complete sgdsa.models.<name>", complete_lazy_models),
                     ("help() and help(x)", help_index_and_doc),
                     ("summaries and a clear size error", summaries_print),
                     ("expression printed", expression_and_table),
                     ("multi-line for", multiline_for),
                     ("error recovery", error_recovery),
                     ("Ctrl-C interrupts a chunk", ctrl_c_running),
                     ("Ctrl-C at the prompt", ctrl_c_prompt)]:
        check(name, fn)

    code = r.close()

    def exits_and_history():
        if code != 0:
            raise AssertionError("REPL exit status %r, want 0" % code)
        with open(hist) as f:
            lines = f.read().splitlines()
        if "40 + 2" not in lines or "for i = 1, 3 do" not in "\n".join(lines):
            raise AssertionError("history lacks entries: %r" % lines)
        os.unlink(hist)

    check("exit and history", exits_and_history)


def pipe_tests():
    def piped_ok():
        src = "x = 2\nx * 21\nfor i = 1, 2 do\n  print('i' .. i)\nend\n'done'\n"
        p = subprocess.run([BIN], input=src, capture_output=True, text=True, timeout=20,
                           env=dict(os.environ, SGDSA_HISTORY=""))
        if p.returncode != 0 or p.stdout != "42\ni1\ni2\ndone\n":
            raise AssertionError("rc %d stdout %r stderr %r" % (p.returncode, p.stdout, p.stderr))

    def piped_error():
        src = "error('first')\n1 + 2\n"
        p = subprocess.run([BIN, "repl"], input=src, capture_output=True, text=True,
                           timeout=20, env=dict(os.environ, SGDSA_HISTORY=""))
        # an error() is an ordinary mistake: its message, no traceback
        if p.returncode != 1 or p.stdout != "3\n" or "stdin:1: first" not in p.stderr \
                or "stack traceback" in p.stderr:
            raise AssertionError("rc %d stdout %r stderr %r" % (p.returncode, p.stdout, p.stderr))

    def interactive_after_script():
        script = os.path.join(TMP, "repl_i_%d.lua" % os.getpid())
        with open(script, "w") as f:
            f.write("answer = (...).n * 2\n")
        p = subprocess.run([BIN, "-i", script, "n=21"], input="answer\n", capture_output=True,
                           text=True, timeout=20, env=dict(os.environ, SGDSA_HISTORY=""))
        os.unlink(script)
        if p.returncode != 0 or p.stdout != "42\n":
            raise AssertionError("rc %d stdout %r stderr %r" % (p.returncode, p.stdout, p.stderr))

    check("piped input", piped_ok)
    check("piped error status", piped_error)
    check("-i SCRIPT then REPL", interactive_after_script)


def main():
    if not BIN or not os.access(BIN, os.X_OK):
        print("test_repl: SGDSA_BIN is not an executable: %r" % BIN)
        return 1
    os.makedirs(TMP, exist_ok=True)
    pty_tests()
    pipe_tests()
    if failures:
        print("test_repl: %d failure(s): %s" % (len(failures), ", ".join(failures)))
        return 1
    print("test_repl: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
