import Distributed
import XCTest

/// `Launch.detect`: which launcher started a process, from the variables each one sets
/// (as observed: Open MPI 4.1's mpirun, Slurm 22.05's srun with and without --mpi=pmix,
/// its batch script, and MPICH's Hydra).
final class LaunchDetectionTests: XCTestCase {
    func testAProcessStartedByHandOrByABatchScriptRunsAlone() {
        XCTAssertNil(Launch.detect([:]))
        XCTAssertNil(Launch.detect(["PATH": "/usr/bin", "HOME": "/root"]))
        // The batch step of a 2-task job: Slurm's job variables, but no step id.
        XCTAssertNil(Launch.detect(["SLURM_JOB_ID": "7", "SLURM_NTASKS": "2", "SLURM_NPROCS": "2", "SLURM_PROCID": "0", "SLURM_LOCALID": "0"]))
    }

    func testOpenMPIsMpirunWinsOverTheSlurmAllocationItRunsIn() {
        let environment = ["OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_SIZE": "2",
                           "PMIX_RANK": "3", "SLURM_NTASKS": "8", "SLURM_PROCID": "0", "SLURM_JOB_ID": "7"]
        XCTAssertEqual(Launch.detect(environment), Launch(launcher: .openMPI, rank: 3, size: 4))
    }

    func testSrunWithPMIxGivesTheStepsTaskCount() {
        let task1 = ["PMIX_RANK": "1", "PMIX_NAMESPACE": "slurm.pmix.1.0", "SLURM_STEP_ID": "0", "SLURM_STEPID": "0",
                     "SLURM_PROCID": "1", "SLURM_NTASKS": "4", "SLURM_STEP_NUM_TASKS": "2"]
        let launch = Launch.detect(task1)
        XCTAssertEqual(launch, Launch(launcher: .pmix, rank: 1, size: 2), "the step's 2 tasks, not the allocation's 4")
        XCTAssertEqual(launch?.providesMPI, true)
        XCTAssertNoThrow(try launch?.checkJoinable())
        // A PMIx launcher outside Slurm (prterun) names no size: MPI's is taken as it is.
        XCTAssertEqual(Launch.detect(["PMIX_RANK": "0"]), Launch(launcher: .pmix, rank: 0, size: nil))
        XCTAssertNoThrow(try Launch(launcher: .pmix, rank: 0, size: nil).check(mpiSize: 5))
    }

    func testHydraAndSlurmsPMI2AreRecognised() {
        XCTAssertEqual(Launch.detect(["PMI_RANK": "2", "PMI_SIZE": "3", "PMI_FD": "5"]), Launch(launcher: .pmi, rank: 2, size: 3))
        XCTAssertNil(Launch.detect(["PMI_RANK": "2"]), "a PMI rank without a size is not a launch")
    }

    func testPlainSrunOfSeveralTasksIsRefusedBeforeMPIStarts() throws {
        let task = ["SLURM_STEP_ID": "0", "SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_STEP_NUM_TASKS": "2"]
        let launch = try XCTUnwrap(Launch.detect(task))
        XCTAssertEqual(launch, Launch(launcher: .slurm, rank: 1, size: 2))
        XCTAssertTrue(launch.joinsMPI)
        XCTAssertThrowsError(try launch.checkJoinable()) { error in
            XCTAssertEqual(error as? Launch.Problem, .noMPIInterface(tasks: 2))
            XCTAssertTrue("\(error)".contains("srun --mpi=pmix"), "\(error)")
        }
        // Older Slurm spells the step id SLURM_STEPID.
        XCTAssertEqual(Launch.detect(["SLURM_STEPID": "3", "SLURM_PROCID": "0", "SLURM_NTASKS": "2"]),
                       Launch(launcher: .slurm, rank: 0, size: 2))
    }

    func testALoneSrunTaskRunsWithoutMPI() throws {
        let launch = try XCTUnwrap(Launch.detect(["SLURM_STEP_ID": "1", "SLURM_PROCID": "0", "SLURM_STEP_NUM_TASKS": "1"]))
        XCTAssertFalse(launch.joinsMPI)
        XCTAssertNoThrow(try launch.checkJoinable())
    }

    func testAWorldOfAnotherSizeThanTheLaunchersIsRefused() {
        let launch = Launch(launcher: .pmi, rank: 0, size: 2)
        XCTAssertNoThrow(try launch.check(mpiSize: 2))
        XCTAssertThrowsError(try launch.check(mpiSize: 1)) { error in
            XCTAssertEqual(error as? Launch.Problem, .worldMismatch(launch: launch, mpiSize: 1))
            XCTAssertTrue("\(error)".contains("started 2 processes but MPI sees 1"), "\(error)")
        }
    }

    func testVariablesThatAreNotNumbersCountAsAbsent() {
        XCTAssertNil(Launch.detect(["OMPI_COMM_WORLD_RANK": "", "OMPI_COMM_WORLD_SIZE": "two"]))
        XCTAssertEqual(Launch.detect(["OMPI_COMM_WORLD_RANK": "x", "OMPI_COMM_WORLD_SIZE": "2", "PMIX_RANK": "1"]),
                       Launch(launcher: .pmix, rank: 1, size: nil))
    }
}
