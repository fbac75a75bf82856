import PhotosUI
import SwiftUI

struct ContentView: View {
    @State private var model = DemoModel()
    /// The picker's selection, reset to nil after every pick so that picking the same photo again is a change.
    @State private var pickerItem: PhotosPickerItem?
    /// The picture to classify; `.task(id:)` restarts (and cancels the previous work) whenever it changes.
    @State private var request: ImageRequest? = ImageRequest(source: .sample)
    @State private var showingCamera = false
    @State private var showingSelfTest = false

    var body: some View {
        NavigationStack {
            ScrollView {
                VStack(alignment: .leading, spacing: 16) {
                    picture
                    buttons
                    if let message = model.message {
                        Text(message)
                            .font(.callout.monospaced())
                            .foregroundStyle(.secondary)
                            .textSelection(.enabled)
                    }
                    results
                    if let summary = model.modelSummary {
                        Text(summary).font(.footnote).foregroundStyle(.secondary)
                    }
                }
                .padding()
            }
            .navigationTitle("ShuffleNet")
            .toolbar {
                ToolbarItem(placement: .topBarTrailing) {
                    Button("Self-test", systemImage: "checkmark.seal") { showingSelfTest = true }
                }
            }
        }
        .task(id: request) {
            guard let request else { return }
            await model.show(request)
        }
        .onChange(of: pickerItem) { _, item in
            guard let item else { return }
            request = ImageRequest(source: .library(item))
            pickerItem = nil
        }
        .fullScreenCover(isPresented: $showingCamera) {
            CameraPicker { photo in
                showingCamera = false
                if let photo {
                    request = ImageRequest(source: .camera(photo))
                }
            }
            .ignoresSafeArea()
        }
        .sheet(isPresented: $showingSelfTest) {
            SelfTestView(model: model)
        }
    }

    @ViewBuilder private var picture: some View {
        if let image = model.image {
            Image(uiImage: image)
                .resizable()
                .scaledToFit()
                .frame(maxWidth: .infinity, maxHeight: 360)
                .clipShape(RoundedRectangle(cornerRadius: 12))
        }
    }

    private var buttons: some View {
        HStack {
            PhotosPicker(selection: $pickerItem, matching: .images) {
                Label("Pick photo", systemImage: "photo.on.rectangle")
            }
            .buttonStyle(.borderedProminent)
            if CameraPicker.isAvailable {
                Button {
                    showingCamera = true
                } label: {
                    Label("Camera", systemImage: "camera")
                }
                .buttonStyle(.bordered)
            }
            Spacer()
            if model.isRunning { ProgressView() }
        }
    }

    @ViewBuilder private var results: some View {
        if !model.predictions.isEmpty {
            VStack(alignment: .leading, spacing: 10) {
                ForEach(model.predictions) { prediction in
                    VStack(alignment: .leading, spacing: 4) {
                        HStack {
                            Text(prediction.label).lineLimit(1)
                            Spacer()
                            Text(prediction.probability, format: .percent.precision(.fractionLength(1)))
                                .monospacedDigit()
                        }
                        ProgressView(value: prediction.probability)
                    }
                }
                if let ms = model.milliseconds {
                    Text("Inference: \(ms, format: .number.precision(.fractionLength(1))) ms")
                        .font(.headline)
                        .monospacedDigit()
                }
            }
        }
    }
}

#Preview {
    ContentView()
}
