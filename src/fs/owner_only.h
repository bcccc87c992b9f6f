#pragma once
// Files and folders for their owner only: what holds other people's traffic
// or a credential (captured exchanges, session ids, logs with client ids).

#include <filesystem>
#include <string_view>
#include <system_error>

namespace porthole::fs {

/// Creates the missing folders of `dir`, each 0700; existing ones are left
/// as they are (a store may be put in any folder, /tmp included). Returns
/// why one could not be made, or no error.
std::error_code create_owner_only_directories(const std::filesystem::path& dir);

/// Creates `file` empty and 0600 if it does not exist; an existing one is
/// left as it is (narrow_to_owner), and any other failure is left to whoever
/// opens it next, which reports it.
void create_owner_only_file(const std::filesystem::path& file);

/// Takes group's and others' access to `path` away if it exists and they
/// have any, with a warning that names the mode it had and `why` it matters
/// ("other local users could read the captured traffic"); a failure is
/// logged, not thrown.
void narrow_to_owner(const std::filesystem::path& path, std::string_view why);

/// Warns, naming the mode and `why` it matters, if group or others may read
/// `path`: for a file that is the user's to keep (a config file holding a
/// credential), which is not changed.
void warn_if_others_can_read(const std::filesystem::path& path, std::string_view why);

}  // namespace porthole::fs
