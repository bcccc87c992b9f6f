#pragma once
// The client's own folder, ~/.porthole: the capture store (captures.db) and
// the session ids (sessions/*.id). What it holds (other people's cookies and
// bodies, the ids that resume a session) is for its owner only.

#include <filesystem>

namespace porthole::client {

/// $HOME/.porthole (the user database's home directory if HOME is unset).
std::filesystem::path state_directory();

/// Makes `dir` its owner's only: creates it 0700 if it is missing (missing
/// parents as create_directories makes them), or takes group's and others'
/// access away if they have any, with a warning naming the mode it had. A
/// failure is logged, not thrown: the files in it then report their own.
void make_private_directory(const std::filesystem::path& dir);

}  // namespace porthole::client
