package dev.sdeploy.demo

import android.content.ActivityNotFoundException
import android.content.Intent
import android.net.Uri
import android.os.Bundle
import android.view.View
import android.widget.Button
import android.widget.ImageView
import android.widget.TextView
import androidx.activity.enableEdgeToEdge
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.activity.viewModels
import androidx.appcompat.app.AppCompatActivity
import androidx.core.content.FileProvider
import androidx.core.view.ViewCompat
import androidx.core.view.WindowInsetsCompat
import androidx.lifecycle.Lifecycle
import androidx.lifecycle.lifecycleScope
import androidx.lifecycle.repeatOnLifecycle
import kotlinx.coroutines.launch
import java.io.File

/**
 * One screen: the image, Sample / Pick photo / Camera, Self-test / Share report, and the result.
 * It draws edge to edge (mandatory from targetSdk 35) and pads its content by the system bars.
 */
class MainActivity : AppCompatActivity() {
    private val viewModel: MainViewModel by viewModels()
    private lateinit var imageView: ImageView
    private lateinit var resultView: TextView
    private lateinit var shareButton: Button
    private lateinit var actions: List<Button>
    private var cameraUri: Uri? = null
    private var report: File? = null

    private val pickPhoto = registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
        if (uri != null) viewModel.classify(ImageSource.Content(uri, getString(R.string.picked_photo)))
    }

    private val takePicture = registerForActivityResult(ActivityResultContracts.TakePicture()) { saved ->
        val uri = cameraUri
        if (saved && uri != null) viewModel.classify(ImageSource.Content(uri, getString(R.string.camera_photo)))
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        enableEdgeToEdge()
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        ViewCompat.setOnApplyWindowInsetsListener(findViewById(R.id.root)) { view, insets ->
            val bars = insets.getInsets(WindowInsetsCompat.Type.systemBars() or WindowInsetsCompat.Type.displayCutout())
            view.setPadding(bars.left, bars.top, bars.right, bars.bottom)
            WindowInsetsCompat.CONSUMED
        }
        imageView = findViewById(R.id.image)
        resultView = findViewById(R.id.results)
        shareButton = findViewById(R.id.share)
        val sample = findViewById<Button>(R.id.sample)
        val pick = findViewById<Button>(R.id.pick)
        val camera = findViewById<Button>(R.id.camera)
        val selfTest = findViewById<Button>(R.id.selftest)
        actions = listOf(sample, pick, camera, selfTest)
        cameraUri = savedInstanceState?.getString(KEY_CAMERA_URI)?.let { Uri.parse(it) }

        sample.setOnClickListener { viewModel.classify(ImageSource.Asset(MainViewModel.SAMPLE)) }
        pick.setOnClickListener {
            pickPhoto.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        camera.setOnClickListener { launchCamera() }
        selfTest.setOnClickListener { viewModel.runSelfTest() }
        shareButton.setOnClickListener { report?.let { share(it) } }

        // Collected only while the screen is visible; the ViewModel keeps working across rotations.
        lifecycleScope.launch {
            repeatOnLifecycle(Lifecycle.State.STARTED) {
                viewModel.state.collect { render(it) }
            }
        }
    }

    override fun onSaveInstanceState(outState: Bundle) {
        super.onSaveInstanceState(outState)
        cameraUri?.let { outState.putString(KEY_CAMERA_URI, it.toString()) }
    }

    private fun launchCamera() {
        val dir = File(cacheDir, "camera").apply { mkdirs() }
        val uri = FileProvider.getUriForFile(this, "$packageName.fileprovider", File(dir, "photo.jpg"))
        cameraUri = uri
        try {
            takePicture.launch(uri)
        } catch (e: ActivityNotFoundException) {
            resultView.text = getString(R.string.no_camera)
        }
    }

    private fun render(state: UiState) {
        for (button in actions) button.isEnabled = !state.busy
        imageView.setImageBitmap(state.image) // null clears the previous image
        resultView.text = if (state.busy) getString(R.string.working) else state.text
        report = state.report
        shareButton.isEnabled = !state.busy
        shareButton.visibility = if (state.report != null) View.VISIBLE else View.GONE
    }

    /** Hands the device report JSON to any app (mail, Drive, a chat) through FileProvider. */
    private fun share(report: File) {
        val uri = FileProvider.getUriForFile(this, "$packageName.fileprovider", report)
        val send = Intent(Intent.ACTION_SEND)
            .setType("application/json")
            .putExtra(Intent.EXTRA_STREAM, uri)
            .putExtra(Intent.EXTRA_SUBJECT, report.name)
            .addFlags(Intent.FLAG_GRANT_READ_URI_PERMISSION)
        try {
            startActivity(Intent.createChooser(send, getString(R.string.share_report)))
        } catch (e: ActivityNotFoundException) {
            resultView.text = getString(R.string.no_share_target)
        }
    }

    companion object {
        private const val KEY_CAMERA_URI = "camera_uri"
    }
}
