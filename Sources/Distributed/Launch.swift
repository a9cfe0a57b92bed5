import Foundation

/// Which launcher started this process, and what it says of the job: read from the variables
/// each launcher sets, before MPI is initialised. MPI itself then gives the ranks
/// (`MPICommunicator`); this decides whether to ask it, and checks that it agrees.
///
/// Launchers recognised, first match wins (`mpirun` under Slurm sets both its own and Slurm's):
/// - Open MPI's `mpirun`: `OMPI_COMM_WORLD_RANK`, `OMPI_COMM_WORLD_SIZE`
/// - PMIx (`srun --mpi=pmix`, `prterun`): `PMIX_RANK`; its size from Slurm's step variables if any
/// - PMI-1/2 (MPICH's Hydra, `srun --mpi=pmi2`): `PMI_RANK`, `PMI_SIZE`
/// - Slurm's `srun` without an MPI plugin: `SLURM_STEP_ID`, `SLURM_PROCID`, `SLURM_STEP_NUM_TASKS`
///   (the batch script itself has no step id, so a process it starts directly runs alone)
public struct Launch: Equatable, Sendable, CustomStringConvertible {
    /// The programs that start the processes of a job.
    public enum Launcher: String, Sendable {
        case openMPI = "mpirun"
        case pmix = "PMIx"
        case pmi = "PMI"
        case slurm = "srun without PMI"
    }

    public let launcher: Launcher
    /// This process's number among those the launcher started.
    public let rank: Int
    /// How many processes the launcher started, where it says (a bare PMIx launcher does not).
    public let size: Int?

    public init(launcher: Launcher, rank: Int, size: Int?) {
        self.launcher = launcher
        self.rank = rank
        self.size = size
    }

    /// Whether MPI can join the launcher's job: every launcher but a plain `srun` hands its
    /// processes a process-management interface (PMIx or PMI) that MPI_Init connects to.
    public var providesMPI: Bool { launcher != .slurm }

    /// Whether the launcher started more than this one process (unknown counts as more).
    public var isMultiProcess: Bool { (size ?? 2) > 1 }

    /// Whether this process should initialise MPI: under any MPI-aware launcher, and under a
    /// plain `srun` of several tasks (to be refused by `checkJoinable`); a lone `srun` task
    /// has nothing to join and runs as one process.
    public var joinsMPI: Bool { providesMPI || isMultiProcess }

    public var description: String {
        "\(launcher.rawValue) (rank \(rank)" + (size.map { " of \($0))" } ?? ")")
    }

    /// The launch described by `environment`, or nil for a process started by hand (or by a
    /// batch script directly). A variable that is present but not a number counts as absent.
    public static func detect(_ environment: [String: String]) -> Launch? {
        func number(_ name: String) -> Int? { environment[name].flatMap { Int($0.trimmingCharacters(in: .whitespaces)) } }
        // The job step's task count: SLURM_NTASKS is the allocation's, which a step may use less of.
        let slurmTasks = number("SLURM_STEP_NUM_TASKS") ?? number("SLURM_NTASKS")
        if let rank = number("OMPI_COMM_WORLD_RANK"), let size = number("OMPI_COMM_WORLD_SIZE") {
            return Launch(launcher: .openMPI, rank: rank, size: size)
        }
        if let rank = number("PMIX_RANK") {
            let underSrun = (number("SLURM_STEP_ID") ?? number("SLURM_STEPID")) != nil
            return Launch(launcher: .pmix, rank: rank, size: underSrun ? slurmTasks : nil)
        }
        if let rank = number("PMI_RANK"), let size = number("PMI_SIZE") {
            return Launch(launcher: .pmi, rank: rank, size: size)
        }
        if (number("SLURM_STEP_ID") ?? number("SLURM_STEPID")) != nil, let rank = number("SLURM_PROCID") {
            return Launch(launcher: .slurm, rank: rank, size: slurmTasks)
        }
        return nil
    }

    /// This process's launch, from its environment.
    public static var current: Launch? { detect(ProcessInfo.processInfo.environment) }

    /// Why a launched job cannot train as one: each process would otherwise train alone and
    /// write the same files as the others.
    public enum Problem: Error, Equatable, CustomStringConvertible {
        /// `srun` started several tasks but gave them no PMI, so MPI cannot connect them.
        case noMPIInterface(tasks: Int)
        /// MPI's world is not the launcher's job (the MPI library did not join it).
        case worldMismatch(launch: Launch, mpiSize: Int)

        public var description: String {
            switch self {
            case let .noMPIInterface(tasks):
                return "srun started \(tasks) tasks without an MPI interface (no PMIX_RANK or PMI_RANK), so each would train alone; "
                    + "start them with srun --mpi=pmix (or set MpiDefault=pmix in slurm.conf)"
            case let .worldMismatch(launch, mpiSize):
                return "the launcher (\(launch.launcher.rawValue)) started \(launch.size ?? 0) processes but MPI sees \(mpiSize) in its world, "
                    + "so they would train apart; start them with an MPI-aware launcher (srun --mpi=pmix or mpirun) that this MPI library supports"
            }
        }
    }

    /// Refuses a launch that MPI cannot join: several `srun` tasks without a PMI.
    public func checkJoinable() throws {
        if !providesMPI, let size, size > 1 { throw Problem.noMPIInterface(tasks: size) }
    }

    /// Refuses an MPI world whose size is not the one the launcher started.
    public func check(mpiSize: Int) throws {
        if let size, size != mpiSize { throw Problem.worldMismatch(launch: self, mpiSize: mpiSize) }
    }
}
