/* version.h - which version of an agent ran: a hash of its scripts and prompts. */
#ifndef WD_VERSION_H
#define WD_VERSION_H

typedef struct wd_versions wd_versions;

/* The agent's version as run_started records it: the SHA-256 (hex) of agent_path and of
** every file of the agent's tools/ and prompts/ and of the shared tools beside its
** directory, each with its name, in name order. vs (made on first use, freed with
** wd_versions_free) keeps one version per directory while no file's size, time or inode
** changes, so a run pays a few stat calls. The string is vs's; "unreadable" when the
** files could not be read. */
const char *wd_agent_version(wd_versions **vs, const char *agent_dir, const char *agent_path);
/* accepts NULL */
void wd_versions_free(wd_versions *vs);

#endif
