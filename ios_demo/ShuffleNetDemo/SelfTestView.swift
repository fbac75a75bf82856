import CoreML
import SwiftUI

/// The Self-test action (docs/app-protocol.md): runs selftest.json's images through the app's own decode,
/// downsampling, crop/scale and model, compares with Python's outputs, and exports the device report.
struct SelfTestView: View {
    let model: DemoModel
    @Environment(\.dismiss) private var dismiss
    @State private var units: ComputeUnitsChoice = .all
    /// Bumped by the Run button; `.task(id:)` runs the self-test and cancels it if the sheet closes.
    @State private var run = 0

    var body: some View {
        NavigationStack {
            Form {
                Section {
                    Picker("Compute units", selection: $units) {
                        ForEach(ComputeUnitsChoice.allCases) { choice in
                            Text(choice.title).tag(choice)
                        }
                    }
                    Button("Run self-test", systemImage: "play.fill") { run += 1 }
                        .disabled(isRunning)
                } footer: {
                    Text("Decodes each image in the bundle's selftest.json exactly as a picked photo, runs the model "
                        + "and compares its outputs with eager PyTorch's. Send the report to the machine that made "
                        + "the bundle and run: sdeploy verify EXPORT_DIR --device-report report.json")
                }
                status
            }
            .navigationTitle("Self-test")
            .toolbar {
                ToolbarItem(placement: .confirmationAction) {
                    Button("Done") { dismiss() }
                }
            }
            .task(id: run) {
                guard run > 0 else { return }
                await model.runSelfTest(computeUnits: units.computeUnits)
            }
        }
    }

    private var isRunning: Bool {
        if case .running = model.selfTest { return true }
        return false
    }

    @ViewBuilder private var status: some View {
        switch model.selfTest {
        case .idle:
            EmptyView()
        case .running:
            Section {
                HStack {
                    ProgressView()
                    Text("Running…")
                }
            }
        case .unavailable(let message):
            Section { Text(message).foregroundStyle(.secondary) }
        case .finished(let report, let url):
            Section("Result") {
                LabeledContent("Verdict") {
                    Text(report.verdict)
                        .font(.headline)
                        .foregroundStyle(report.verdict == "PASS" ? Color.green : Color.red)
                }
                if let metrics = report.metrics {
                    LabeledContent("Max abs error", value: metrics.maxAbsError, format: .number.precision(.significantDigits(3)))
                    LabeledContent("Max relative error", value: metrics.maxRelError, format: .number.precision(.significantDigits(3)))
                    LabeledContent("Min cosine", value: metrics.minCosine, format: .number.precision(.fractionLength(7)))
                    LabeledContent("Top-1 agreement", value: metrics.top1Agreement, format: .percent.precision(.fractionLength(0)))
                    LabeledContent("Decisive top-1 agreement", value: metrics.decisiveTop1Agreement,
                                   format: .percent.precision(.fractionLength(0)))
                }
                if let median = report.medianMilliseconds {
                    LabeledContent("Median latency", value: "\(median.formatted(.number.precision(.fractionLength(2)))) ms")
                }
                LabeledContent("Images", value: "\(report.images.count)")
                LabeledContent("Device", value: report.device.device)
                LabeledContent("Accelerator", value: report.device.accelerator)
                if let error = report.error {
                    Text(error).font(.callout.monospaced()).textSelection(.enabled)
                }
            }
            if let url {
                Section {
                    ShareLink(item: url) {
                        Label("Export device report", systemImage: "square.and.arrow.up")
                    }
                }
            }
        }
    }
}

/// The compute units a self-test can load the model with: one report per choice shows which accelerator
/// matches Python.
enum ComputeUnitsChoice: String, CaseIterable, Identifiable {
    case all, cpuAndNeuralEngine, cpuAndGPU, cpuOnly

    var id: String { rawValue }

    var computeUnits: MLComputeUnits {
        switch self {
        case .all: return .all
        case .cpuAndNeuralEngine: return .cpuAndNeuralEngine
        case .cpuAndGPU: return .cpuAndGPU
        case .cpuOnly: return .cpuOnly
        }
    }

    var title: String {
        switch self {
        case .all: return "All (Core ML decides)"
        case .cpuAndNeuralEngine: return "CPU and Neural Engine"
        case .cpuAndGPU: return "CPU and GPU"
        case .cpuOnly: return "CPU only"
        }
    }
}
