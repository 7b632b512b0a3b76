#include "net/port_holder.h"

#include <dirent.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "net/socket.h"

namespace tcpms::net {

namespace {

constexpr unsigned kTcpListen = 0x0A;               // st column of /proc/net/tcp
constexpr unsigned long kPfExiting = 0x00000004;    // linux/sched.h PF_EXITING
constexpr uint64_t kSigkillBit = uint64_t{1} << (SIGKILL - 1);

// Inodes of the listening sockets on `port` in one /proc/net/tcp-style table.
void listening_inodes(const char* table, uint16_t port, std::set<unsigned long>& inodes,
                      PortHolders& out) {
  std::ifstream in(table);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
    char local[64], remote[64];
    unsigned state = 0;
    unsigned uid = 0;
    unsigned long inode = 0;
    if (std::sscanf(line.c_str(), " %*s %63s %63s %x %*s %*s %*s %u %*s %lu", local, remote,
                    &state, &uid, &inode) != 5 || state != kTcpListen)
      continue;
    const char* colon = std::strrchr(local, ':');
    if (colon == nullptr || std::strtoul(colon + 1, nullptr, 16) != port) continue;
    inodes.insert(inode);
    out.listening = true;
    out.uid = uid;
  }
}

// Killed or dying: a zombie, PF_EXITING set, or SIGKILL pending (sent, not yet acted on).
bool process_exiting(const std::string& dir) {
  std::ifstream stat(dir + "/stat");
  std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
  size_t paren = text.rfind(')');  // comm may contain spaces and parentheses
  if (paren == std::string::npos) return true;  // gone while we looked
  std::istringstream rest(text.substr(paren + 1));
  char state = '?';
  std::string skip;
  unsigned long flags = 0;
  rest >> state;
  for (int i = 0; i < 5; ++i) rest >> skip;  // ppid pgrp session tty_nr tpgid
  rest >> flags;
  if (state == 'Z' || state == 'X' || (flags & kPfExiting) != 0) return true;
  std::ifstream status(dir + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("ShdPnd:", 0) == 0 || line.rfind("SigPnd:", 0) == 0) {
      if ((std::strtoull(line.c_str() + 7, nullptr, 16) & kSigkillBit) != 0) return true;
    }
  }
  return false;
}

}  // namespace

bool PortHolders::any_live() const {
  for (const auto& h : found)
    if (!h.exiting) return true;
  return false;
}

std::string PortHolders::describe() const {
  if (!found.empty()) {
    std::string out;
    for (const auto& h : found) {
      if (!out.empty()) out += ", ";
      out += "pid " + std::to_string(h.pid) + " (" + h.name + (h.exiting ? ", exiting)" : ")");
    }
    return out;
  }
  if (!listening) return "a socket bound without listening, or of another network namespace";
  if (uid == ::geteuid())
    return "a listening socket no process has open any more (a killed process still closing "
           "its sockets)";
  return "a listening socket of uid " + std::to_string(uid) + " (its process is not visible to us)";
}

PortHolders find_port_holders(uint16_t port) {
  PortHolders out;
  std::set<unsigned long> inodes;
  listening_inodes("/proc/net/tcp", port, inodes, out);
  listening_inodes("/proc/net/tcp6", port, inodes, out);
  if (inodes.empty()) return out;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return out;
  while (dirent* e = ::readdir(proc)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (pid <= 0 || *end != '\0') continue;
    std::string dir = std::string("/proc/") + e->d_name;
    DIR* fds = ::opendir((dir + "/fd").c_str());
    if (fds == nullptr) continue;  // another user's, or gone
    bool holds = false;
    while (dirent* f = ::readdir(fds)) {
      char target[64];
      std::string link = dir + "/fd/" + f->d_name;
      ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      target[n] = '\0';
      unsigned long inode = 0;
      if (std::sscanf(target, "socket:[%lu]", &inode) == 1 && inodes.count(inode) != 0) {
        holds = true;
        break;
      }
    }
    ::closedir(fds);
    if (!holds) continue;
    PortHolder h;
    h.pid = static_cast<pid_t>(pid);
    std::ifstream comm(dir + "/comm");
    std::getline(comm, h.name);
    h.exiting = process_exiting(dir);
    out.found.push_back(std::move(h));
  }
  ::closedir(proc);
  return out;
}

int wait_port_free(const Endpoint& at, std::chrono::milliseconds patience, std::string& holder) {
  using Clock = std::chrono::steady_clock;
  int err = probe_port_free(at);
  if (err != EADDRINUSE) return err;
  // Read once here and once on giving up: with many connections /proc/net/tcp is long.
  PortHolders holders = find_port_holders(at.port());
  if (holders.any_live()) {
    // Once more after a moment: a process that has just taken its SIGKILL off the pending
    // set has not set PF_EXITING yet.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (err = probe_port_free(at); err != EADDRINUSE) return err;
    holders = find_port_holders(at.port());
  }
  holder = holders.describe();
  // A live process has the port (another server, or this one still running), or a socket
  // is bound there without listening (nothing a dying listener explains): refuse now.
  if (holders.any_live() || !holders.listening || patience.count() <= 0) return err;
  spdlog::warn("{}: the port is held by {}; waiting up to {} ms for it to be released",
               at.to_string(), holder, patience.count());
  const auto start = Clock::now();
  while (Clock::now() - start < patience) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    err = probe_port_free(at);
    if (err != EADDRINUSE) {
      if (err == 0)
        spdlog::info("{}: the port is free after {} ms", at.to_string(),
                     std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
      return err;
    }
  }
  holder = find_port_holders(at.port()).describe();
  return err;
}

}  // namespace tcpms::net
