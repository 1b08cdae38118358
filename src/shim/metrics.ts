// Kata's agent stats as containerd's cgroup v1 Metrics (what runc's shim
// returns, so `ctr task metrics` and CRI stats can read them). As Kata's shim
// (setMemoryStatsV1, setCPUStatsV1), every entry a reader dereferences is
// present, zero where the agent had nothing: CRI-O reads m.Memory.KernelTCP.Usage,
// m.CPU.Throttling and m.Pids unchecked, and a missing one crashes all of CRI-O.
import type { CgroupStats, MemoryStats, StatsContainerResponse } from "../gen/grpc";
import type { MetricsInit, BlkIOEntryInit } from "../gen/io.containerd.cgroups.v1";

export function statsToMetrics(s: StatsContainerResponse): MetricsInit {
  const cg: Partial<CgroupStats> = s.cgroupStats ?? {};
  const mem: Partial<MemoryStats> = cg.memoryStats ?? {};
  const raw: Record<string, number> = mem.stats ?? {};
  const cpu = cg.cpuStats;
  const blk = (l: { major: number; minor: number; op: string; value: number }[] | undefined): BlkIOEntryInit[] =>
    (l ?? []).map((e) => ({ major: e.major, minor: e.minor, op: e.op, value: e.value }));
  const entry = (d: { usage: number; maxUsage: number; failcnt: number; limit: number } | undefined) =>
    d ? { usage: d.usage, max: d.maxUsage, failcnt: d.failcnt, limit: d.limit } : { usage: 0, max: 0, failcnt: 0, limit: 0 };
  return {
    hugetlb: Object.entries(cg.hugetlbStats ?? {}).map(([pagesize, h]) => ({ usage: h.usage, max: h.maxUsage, failcnt: h.failcnt, pagesize })),
    pids: { current: cg.pidsStats?.current ?? 0, limit: cg.pidsStats?.limit ?? 0 },
    cpu: {
      usage: {
        total: cpu?.cpuUsage?.totalUsage ?? 0,
        kernel: cpu?.cpuUsage?.usageInKernelmode ?? 0,
        user: cpu?.cpuUsage?.usageInUsermode ?? 0,
        perCpu: cpu?.cpuUsage?.percpuUsage ?? [],
      },
      throttling: {
        periods: cpu?.throttlingData?.periods ?? 0,
        throttledPeriods: cpu?.throttlingData?.throttledPeriods ?? 0,
        throttledTime: cpu?.throttlingData?.throttledTime ?? 0,
      },
    },
    memory: {
          cache: mem.cache ?? 0,
          rss: raw.rss ?? 0,
          rssHuge: raw.rss_huge ?? 0,
          mappedFile: raw.mapped_file ?? 0,
          dirty: raw.dirty ?? 0,
          writeback: raw.writeback ?? 0,
          pgPgIn: raw.pgpgin ?? 0,
          pgPgOut: raw.pgpgout ?? 0,
          pgFault: raw.pgfault ?? 0,
          pgMajFault: raw.pgmajfault ?? 0,
          inactiveAnon: raw.inactive_anon ?? 0,
          activeAnon: raw.active_anon ?? 0,
          inactiveFile: raw.inactive_file ?? 0,
          activeFile: raw.active_file ?? 0,
          unevictable: raw.unevictable ?? 0,
          hierarchicalMemoryLimit: raw.hierarchical_memory_limit ?? 0,
          hierarchicalSwapLimit: raw.hierarchical_memsw_limit ?? 0,
          totalCache: raw.total_cache ?? 0,
          totalRss: raw.total_rss ?? 0,
          totalRssHuge: raw.total_rss_huge ?? 0,
          totalMappedFile: raw.total_mapped_file ?? 0,
          totalDirty: raw.total_dirty ?? 0,
          totalWriteback: raw.total_writeback ?? 0,
          totalPgPgIn: raw.total_pgpgin ?? 0,
          totalPgPgOut: raw.total_pgpgout ?? 0,
          totalPgFault: raw.total_pgfault ?? 0,
          totalPgMajFault: raw.total_pgmajfault ?? 0,
          totalInactiveAnon: raw.total_inactive_anon ?? 0,
          totalActiveAnon: raw.total_active_anon ?? 0,
          totalInactiveFile: raw.total_inactive_file ?? 0,
          totalActiveFile: raw.total_active_file ?? 0,
          totalUnevictable: raw.total_unevictable ?? 0,
          usage: entry(mem.usage),
          swap: entry(mem.swapUsage),
          kernel: entry(mem.kernelUsage),
          // Kata agent reports no TCP buffer usage (its MemoryStats has none).
          kernelTcp: entry(undefined),
        },
    blkio: cg.blkioStats
      ? {
          ioServiceBytesRecursive: blk(cg.blkioStats.ioServiceBytesRecursive),
          ioServicedRecursive: blk(cg.blkioStats.ioServicedRecursive),
          ioQueuedRecursive: blk(cg.blkioStats.ioQueuedRecursive),
          ioServiceTimeRecursive: blk(cg.blkioStats.ioServiceTimeRecursive),
          ioWaitTimeRecursive: blk(cg.blkioStats.ioWaitTimeRecursive),
          ioMergedRecursive: blk(cg.blkioStats.ioMergedRecursive),
          ioTimeRecursive: blk(cg.blkioStats.ioTimeRecursive),
          sectorsRecursive: blk(cg.blkioStats.sectorsRecursive),
        }
      : undefined,
    network: (s.networkStats ?? []).map((n) => ({ ...n })),
  };
}
